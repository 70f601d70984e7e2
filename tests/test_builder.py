"""The TFDS builder, run by TFDS' own harness on dummy_data (kaggle_3m) and on phantoms (synthetic)."""

import tensorflow_datasets as tfds

from brainmri_tfds.lgg_mri import lgg_mri_dataset_builder


class KaggleConfigTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = lgg_mri_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["kaggle_3m"]
    SPLITS = {"train": 2, "validation": 2, "test": 2}  # dummy_data: one 2-slice patient per split
    SKIP_CHECKSUMS = True


class SyntheticConfigTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = lgg_mri_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["synthetic"]
    SPLITS = {"train": 323, "validation": 41, "test": 38}  # 16/2/2 phantom patients, seed 0
    SKIP_CHECKSUMS = True


del tfds  # keeps pytest from collecting the imported base class
