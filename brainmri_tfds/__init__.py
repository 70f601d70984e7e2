"""brainmri_tfds: the Kaggle LGG brain-MRI segmentation data as a TFDS dataset and a tf.data pipeline.

`import brainmri_tfds` registers the `lgg_mri` builder, so `tfds.load("lgg_mri")` works.
"""

from brainmri_tfds import runtime

runtime.configure()  # before anything below loads TensorFlow

from brainmri_tfds import lgg_mri  # noqa: E402, F401  (registers lgg_mri with TFDS)
from brainmri_tfds.layout import LayoutError  # noqa: E402
from brainmri_tfds.pipeline import DatasetNotBuiltError, load_split, make_dataset, parse_dataset_name  # noqa: E402
from brainmri_tfds.preprocessing import CHANNEL_MODES, Preprocessor, prepare_image, prepare_mask  # noqa: E402

__all__ = [
    "CHANNEL_MODES",
    "DatasetNotBuiltError",
    "LayoutError",
    "load_split",
    "make_dataset",
    "parse_dataset_name",
    "Preprocessor",
    "prepare_image",
    "prepare_mask",
]
