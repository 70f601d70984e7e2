"""lgg_mri: brain MRI slices of lower-grade glioma patients with FLAIR abnormality masks."""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from brainmri_tfds import examples, layout
from brainmri_tfds.splits import SPLIT_NAMES, folds_of, split_of

_HOMEPAGE = "https://www.kaggle.com/datasets/mateuszbuda/lgg-mri-segmentation"


def _layout_error_in(error: BaseException | None) -> layout.LayoutError | None:
    """The LayoutError `error` is, or was raised from (TFDS and Beam may wrap it)."""
    while error is not None and not isinstance(error, layout.LayoutError):
        error = error.__cause__ or error.__context__
    return error


def _brief_layout_errors(previous_hook):
    """An excepthook that prints a bad-input error as one line and leaves every other error alone."""

    def hook(kind, error, traceback):
        bad_input = _layout_error_in(error)
        if bad_input is None:
            previous_hook(kind, error, traceback)
        else:
            print(f"lgg_mri: error: {bad_input}", file=sys.stderr)

    return hook


# Under the `tfds` command line, bad input in manual_dir is an expected user error: one line naming
# the file, exit status 1, no traceback. Python callers get the LayoutError as usual.
if Path(sys.argv[0]).name == "tfds":
    sys.excepthook = _brief_layout_errors(sys.excepthook)


@dataclasses.dataclass
class LggMriConfig(tfds.core.BuilderConfig):
    """`synthetic_patients` > 0 builds phantoms instead of reading `manual_dir`; `folds` > 0 writes
    splits fold0..fold<folds-1> of equal size (see `splits.folds_of`) instead of train/validation/test."""

    synthetic_patients: int = 0
    synthetic_seed: int = 0
    folds: int = 0


def _manual_dir(dl_manager: tfds.download.DownloadManager):
    """manual_dir, or a one-line LayoutError where TFDS finds it missing or empty."""
    try:
        return dl_manager.manual_dir
    except AssertionError as err:  # TFDS's check; its message goes on to print the whole instructions
        first_sentence = str(err).split(". ")[0]
        raise layout.LayoutError(
            f"{first_sentence}. Put Kaggle's zip (as downloaded) or its extracted kaggle_3m/ folder there."
        ) from None


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for the Kaggle LGG segmentation dataset, split by patient."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: patient-level splits, 256x256x3 slices, 0/1 masks."}
    BUILDER_CONFIGS = [
        LggMriConfig(
            name="kaggle_3m",
            description="The 110 TCGA-LGG patients of Kaggle's lgg-mri-segmentation download (manual_dir).",
        ),
        LggMriConfig(
            name="kaggle_3m_folds",
            description="The same patients in 10 equal folds, fold0..fold9, for patient-level cross-validation "
                        "(see brainmri_tfds.splits.cross_validation_splits).",
            folds=10,
        ),
        LggMriConfig(
            name="synthetic",
            description="20 phantom patients in the same layout, generated on the fly (no download).",
            synthetic_patients=20,
            synthetic_seed=0,
        ),
    ]
    DEFAULT_CONFIG_NAME = "kaggle_3m"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Download the dataset from https://www.kaggle.com/datasets/mateuszbuda/lgg-mri-segmentation
    (Kaggle account needed) and place in `manual_dir` ONE of:
      * Kaggle's zip as downloaded (any name ending in .zip, e.g. archive.zip); it is read
        directly, do not unpack it; keep no other zip beside it;
      * the extracted `kaggle_3m/` folder (then `manual_dir` may also be `kaggle_3m/` itself,
        or a folder holding `lgg-mri-segmentation/kaggle_3m/`).
    Each slice is read once even though Kaggle's archive holds the tree twice.
    The `synthetic` config needs nothing in manual_dir.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=layout.IMAGE_SHAPE, encoding_format="png"),
                "mask": tfds.features.Image(shape=layout.MASK_SHAPE + (1,), encoding_format="png"),
                "patient_id": tfds.features.Text(),
                "slice_index": np.int32,
                "has_tumor": np.bool_,
                "tumor_pixels": np.int32,
            }),
            supervised_keys=("image", "mask"),
            homepage=_HOMEPAGE,
        )

    def download_and_prepare(self, *, download_config: tfds.download.DownloadConfig | None = None, **kwargs) -> None:
        """As TFDS's; with Beam options or a runner (`tfds build --beam_pipeline_options=...`) the
        kaggle_3m slices are read and encoded by Beam workers instead of this process."""
        self._through_beam = bool(download_config and (download_config.beam_options or download_config.beam_runner))
        super().download_and_prepare(download_config=download_config, **kwargs)

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        if self.builder_config.synthetic_patients:
            return {split: self._generate_synthetic(split) for split in SPLIT_NAMES}
        manual_dir = _manual_dir(dl_manager)
        source = layout.open_source(manual_dir)
        slices = layout.list_slices(source)  # listing stays here: bad layouts fail before any work is sent out
        split_by_patient = self._assign_splits({s.patient_id for s in slices})
        by_split = {split: [s for s in slices if split_by_patient[s.patient_id] == split]
                    for split in sorted(set(split_by_patient.values()))}
        if getattr(self, "_through_beam", False):
            return {split: examples.beam_examples(source.location, items) for split, items in by_split.items() if items}
        return {split: self._generate_examples(source, items) for split, items in by_split.items() if items}

    def _assign_splits(self, patients: set[str]) -> dict[str, str]:
        """Patient id -> split name: folds if the config has them, else the hash split. (With fewer
        patients than folds the last folds stay empty and are not written; `tfds build` without
        --config builds every config, so this must not fail on a small download.)"""
        folds = self.builder_config.folds
        if not folds:
            return {patient: split_of(patient) for patient in patients}
        return folds_of(patients, folds)

    def _generate_synthetic(self, split: str) -> Iterator[tuple[str, dict]]:
        """Writes this split's phantoms to a temporary folder and reads them like real data.
        (Always in this process: phantoms are small, and a temporary folder is not shared with Beam workers.)"""
        from brainmri_tfds import synthetic  # imported here so `python -m brainmri_tfds.synthetic` runs cleanly

        config = self.builder_config
        with tempfile.TemporaryDirectory(prefix="lgg_synthetic_") as folder:
            synthetic.write_patients(folder, config.synthetic_patients, config.synthetic_seed, splits=(split,))
            source = layout.open_source(folder)
            yield from self._generate_examples(source, layout.list_slices(source))

    def _generate_examples(self, source: layout.Source, slices: list[layout.SliceFiles]):
        for item, image, mask in layout.read_slices(source, slices):
            yield examples.example(item, image, mask)
