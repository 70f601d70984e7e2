"""From a trained model to scores: predicting patients' masks (`inference`), scoring them as
radiology papers do (`scoring`), and the figures and tables a reader looks at (`figures`, `report`)."""
