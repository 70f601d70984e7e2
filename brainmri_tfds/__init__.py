"""brainmri_tfds: the Kaggle LGG brain-MRI segmentation data as a TFDS dataset and a tf.data pipeline.

`import brainmri_tfds` registers the `lgg_mri` builder, so `tfds.load("lgg_mri")` works. The
pipeline's and the preprocessing's names load TensorFlow when first used, not at import, so that
the readers and a command's `--help` need not wait for it.
"""

import importlib

from brainmri_tfds import runtime

runtime.configure()  # before anything loads TensorFlow

from brainmri_tfds import lgg_mri  # noqa: E402, F401  (registers lgg_mri with TFDS)
from brainmri_tfds.layout import LayoutError  # noqa: E402

_LAZY = {
    "DatasetNotBuiltError": "pipeline", "load_split": "pipeline", "make_dataset": "pipeline",
    "parse_dataset_name": "settings",
    "CHANNEL_MODES": "settings", "Preprocessor": "preprocessing", "prepare_image": "preprocessing",
    "prepare_mask": "preprocessing",
}

__all__ = ["LayoutError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"brainmri_tfds.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'brainmri_tfds' has no attribute {name!r}")
