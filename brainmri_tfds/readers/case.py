"""The case record every reader yields, whatever the format: slices x channels as Kaggle stores
them, the truth when given, and the geometry that writes a mask back where it belongs.

A reader's `find` gives case sources (cheap: files found, names checked); `source.load()` reads
one into a `Case`. The geometry (`brainmri_tfds.readers.volume.VolumeGeometry` for NIfTI and
DICOM, `brainmri_tfds.readers.kaggle.SliceGeometry` for Kaggle's slices) turns values between the
model's slices and the input's own grid and writes the files a user gets back.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np

CHANNELS = ("0000", "0001", "0002")  # the model's sequences, in Kaggle's order: pre-contrast, FLAIR, post-contrast
PRE, FLAIR, POST = CHANNELS
SEQUENCE_LABELS = {PRE: "pre-contrast", FLAIR: "FLAIR", POST: "post-contrast"}


class ScanError(ValueError):
    """A scan that cannot be read as a case: one line naming the file and what is wrong."""


class Geometry(Protocol):
    """Where a case's slices came from, and how values go back there. The input's own grid is
    called native; `in_model_axes` turns a native array into [slices, rows, cols] of the model's
    axial slices at native resolution, where masks are scored and measured."""

    def to_native(self, volume: np.ndarray) -> np.ndarray:
        """[slices, 256, 256] values in the model's slices -> the native grid."""

    def in_model_axes(self, volume: np.ndarray) -> np.ndarray: ...

    def slice_spacing(self) -> tuple | None:
        """(row mm, column mm, slice mm) in the model's axes; None where the input does not say."""

    def describe(self) -> str: ...

    def warnings(self, images: np.ndarray) -> list[str]:
        """How this input differs from the data the models were trained on."""

    def flair_in_model_axes(self, images: np.ndarray) -> np.ndarray:
        """The FLAIR at native resolution in the model's axes, for pictures."""

    def mask_files(self, name: str, mask: np.ndarray) -> dict[str, bytes]:
        """A native mask as this format's files: {path under the output folder: contents}."""

    def probability_files(self, name: str, probability: np.ndarray) -> dict[str, bytes]: ...


@dataclasses.dataclass
class Case:
    """One case ready for the model, and what it takes to write a mask back."""

    name: str
    images: np.ndarray  # uint8 [slices, 256, 256, 3]: pre-contrast, FLAIR, post-contrast
    truth: np.ndarray | None  # bool on the native grid, if given
    sequences: tuple  # which sequences were found (the others hold FLAIR)
    geometry: Geometry

    def describe(self) -> str:
        """Its size and spacing, its slices, and which sequences it has."""
        have = ", ".join(SEQUENCE_LABELS[s] for s in self.sequences)
        return f"{self.geometry.describe()}, {self.images.shape[0]} axial slices ({have})"


class CaseSource(Protocol):
    """A case a reader found, not yet read."""

    name: str
    left_out: tuple  # files of sequences the model does not take

    @property
    def flair_only(self) -> bool: ...

    def load(self) -> Case: ...


def flair_everywhere(images: np.ndarray) -> np.ndarray:
    """[..., 3] images with pre- and post-contrast replaced by FLAIR, as a scan holding FLAIR alone
    is filled (and as Kaggle fills a patient missing a sequence)."""
    return np.repeat(images[..., 1:2], 3, axis=-1)


@dataclasses.dataclass(frozen=True)
class FlairAlone:
    """A case source read as if FLAIR were all it had (`evaluate.py --flair-only`)."""

    source: CaseSource

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def left_out(self) -> tuple:
        return self.source.left_out

    @property
    def flair_only(self) -> bool:
        return True

    def load(self) -> Case:
        case = self.source.load()
        return dataclasses.replace(case, images=flair_everywhere(case.images), sequences=(FLAIR,))
