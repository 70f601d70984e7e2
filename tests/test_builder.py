"""The TFDS builder, run by TFDS' own harness on dummy_data (kaggle_3m), and its phantoms (synthetic)."""

import tensorflow_datasets as tfds

from brainmri_tfds.lgg_mri import lgg_mri_dataset_builder


class KaggleConfigTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = lgg_mri_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["kaggle_3m"]
    SPLITS = {"train": 2, "validation": 2, "test": 2}  # dummy_data: one 2-slice patient per split
    SKIP_CHECKSUMS = True


def test_synthetic_config_builds_its_phantom_patients_split_by_patient(synthetic_data_dir):
    """The synthetic config as the session's fixture built it (the harness above would build it again)."""
    builder = tfds.builder("lgg_mri/synthetic", data_dir=synthetic_data_dir)
    splits = {name: split.num_examples for name, split in builder.info.splits.items()}
    assert splits == {"train": 323, "validation": 41, "test": 38}  # 16/2/2 phantom patients, seed 0
    patients = {name: {example["patient_id"].decode() for example in tfds.as_numpy(builder.as_dataset(split=name))}
                for name in splits}
    assert [len(p) for p in patients.values()] == [16, 2, 2] and not set.intersection(*patients.values())
    example = next(iter(tfds.as_numpy(builder.as_dataset(split="test"))))
    assert example["image"].shape == (256, 256, 3) and example["mask"].shape == (256, 256, 1)
    assert example["has_tumor"] == (example["tumor_pixels"] > 0) == bool(example["mask"].any())
