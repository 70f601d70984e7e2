"""Slices in Kaggle's layout (a folder or zip that never went through TFDS): one case per patient.

The slices are read by `brainmri_tfds.layout`, the one reader of that layout (the TFDS builder
uses it too). They are already the model's 256x256 axial slices, so the native grid is the
slices themselves; Kaggle's TIFFs carry no voxel size, so no volume in mL or distance in mm can
be given. Masks go back as Kaggle stores them: `predictions/<patient>_<n>_pred_mask.png`, 0/255.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from brainmri_tfds import layout
from brainmri_tfds.readers.case import CHANNELS, Case, ScanError


def claims(path: Path) -> bool:
    """Any file or folder the other formats leave: `layout.open_source` says what it lacks."""
    return True


@dataclasses.dataclass(frozen=True)
class SliceGeometry:
    """The slices of one Kaggle patient: the native grid is [slices, 256, 256], numbered as Kaggle's files."""

    indices: tuple

    def to_native(self, volume: np.ndarray) -> np.ndarray:
        return volume

    def in_model_axes(self, volume: np.ndarray) -> np.ndarray:
        return volume

    def slice_spacing(self) -> None:
        return None

    def describe(self) -> str:
        return "Kaggle's 256x256 slices (no voxel size: no mL or mm)"

    def warnings(self, images: np.ndarray) -> list[str]:
        return []

    def flair_in_model_axes(self, images: np.ndarray) -> np.ndarray:
        return images[..., 1].astype(np.float32)

    def mask_files(self, name: str, mask: np.ndarray) -> dict[str, bytes]:
        """{'predictions/<name>_<n>_pred_mask.png': 0/255 PNG} per slice."""
        import cv2

        return {f"predictions/{name}_{index}_pred_mask.png": cv2.imencode(".png", m.astype(np.uint8) * 255)[1].tobytes()
                for index, m in zip(self.indices, mask)}

    def probability_files(self, name: str, probability: np.ndarray) -> dict[str, bytes]:
        """{'predictions/<name>_probabilities.npy': float16 [slices, 256, 256]}."""
        import io

        buffer = io.BytesIO()
        np.save(buffer, probability.astype(np.float16))
        return {f"predictions/{name}_probabilities.npy": buffer.getvalue()}


@dataclasses.dataclass(frozen=True)
class KagglePatient:
    """One patient's slice files in a Kaggle-layout source."""

    source: object  # layout.Source
    name: str
    slices: tuple  # layout.SliceFiles, in slice order
    left_out: tuple = ()

    @property
    def flair_only(self) -> bool:
        return False  # Kaggle's slices hold all three sequences

    def load(self) -> Case:
        read = list(layout.read_slices(self.source, list(self.slices)))
        images = np.stack([image for _, image, _ in read])
        truth = None if read[0][2] is None else np.stack([mask[..., 0] for _, _, mask in read]).astype(bool)
        return Case(self.name, images, truth, CHANNELS, SliceGeometry(tuple(s.slice_index for s in self.slices)))


def find(path: Path, labels: Path | None = None, channel_names: dict | None = None) -> list[KagglePatient]:
    """One case per patient folder, sorted by name; true masks where every slice has its `_mask.tif`."""
    if labels is not None or channel_names:
        raise ScanError(f"{path}: Kaggle's layout holds its masks beside the slices and its sequences in a fixed "
                        "order; --labels and --channel-names are for NIfTI and DICOM input")
    try:
        source = layout.open_source(path)
    except layout.LayoutError as err:
        raise ScanError(f"{err} Nor NIfTI files (.nii, .nii.gz) or DICOM series.") from None
    grouped: dict[str, list] = {}
    for item in layout.list_slices(source, masks_required=False):
        grouped.setdefault(item.patient_id, []).append(item)
    return [KagglePatient(source, patient, tuple(items)) for patient, items in sorted(grouped.items())]
