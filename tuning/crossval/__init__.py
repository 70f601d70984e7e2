"""Patient cross-validation, the protocol behind every accuracy figure: run the rounds, compare two
runs patient by patient, list a run's worst patients, score every inference setting on a run's test
patients (`python -m tuning.crossval --help`)."""
