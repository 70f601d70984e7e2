"""The data options (brainmri_tfds/settings.py): one check, shared by make_dataset and DataSettings,
that names the first option a slice cannot be prepared with; dataset names."""

import pytest

from brainmri_tfds import settings


@pytest.mark.parametrize("options, message", [
    ((32, "rgb", "patient", 0), "channels must be one of"),
    ((4, "all", "patient", 0), "image_size must be at least 8"),
    ((32, "all", "slice", 0), "normalization must be one of"),
    ((32, "all", "patient", -1), "context must be 0 to 4"),
    ((32, "all", "patient", 5), "context must be 0 to 4"),
    ((32, "all", "patient", 0, "tumor"), "crop must be one of"),
])
def test_an_option_no_slice_can_be_prepared_with_is_named(options, message):
    with pytest.raises(ValueError, match=message):
        settings.check_options(*options)


def test_the_options_the_defaults_use_pass():
    settings.check_options(128, "all", "patient", 0)
    settings.check_options(32, "flair", "patient", 4, "brain")


def test_a_dataset_name_gives_its_config():
    assert settings.parse_dataset_name("lgg_mri") == "kaggle_3m"
    assert settings.parse_dataset_name("lgg_mri/synthetic") == "synthetic"
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        settings.parse_dataset_name("mnist")
