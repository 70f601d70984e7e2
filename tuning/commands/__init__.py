"""The project's commands as modules of the package, so that they run from an installed copy as
well as from a checkout: `python train.py` / `brainmri-train` (train), `python evaluate.py` /
`brainmri-evaluate` (evaluate), `brainmri-predict` (tuning.predict)."""
