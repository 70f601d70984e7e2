"""The `lgg_mri` TFDS dataset."""

from brainmri_tfds.lgg_mri.lgg_mri_dataset_builder import Builder

__all__ = ["Builder"]
