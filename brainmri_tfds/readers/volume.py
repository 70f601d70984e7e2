"""Volumes (NIfTI files, DICOM series) brought to the slices the model knows, and masks written
back on the volume's own grid: what the NIfTI and DICOM readers share.

Geometry goes through nibabel's orientation tools and the affine, never the array's shape: each
volume is turned so that its slices are axial with rows running anterior to posterior, columns
from the patient's right to left and slices from inferior to superior (Kaggle's slices are DICOM
axial displays); each slice is padded to a square and resized to 256x256. `to_native` undoes
all of it. Intensities become uint8 per sequence (the 99.5th percentile of the non-zero voxels
-> 255; uint8 data is kept as it is); the model's own normalisation follows, as in training.
"""

from __future__ import annotations

import dataclasses
import gzip
from typing import Protocol

import numpy as np

from brainmri_tfds.layout import NATIVE_SIZE
from brainmri_tfds.readers.case import CHANNELS, FLAIR, Case, ScanError

MODEL_AXES = ("P", "L", "S")  # where increasing rows, columns and slices point
# Kaggle's volumes: 20-88 axial slices of about 1 x 1 mm in-plane (256x256), not skull-stripped.
TRAINING_SLICES = (20, 88)
TRAINING_SLICE_MM = (2.0, 7.0)


class Volume(Protocol):
    """One 3D volume on disk (a NIfTI file, a DICOM series)."""

    name: str

    def read(self):
        """(nibabel image, its data as an array), read whole; ScanError naming the file when it is broken."""


@dataclasses.dataclass(frozen=True)
class CaseFiles:
    """The volumes of one case: the model's sequence (CHANNELS) -> volume, the true mask if given,
    and the files left out (a sequence the model does not take)."""

    name: str
    sequences: dict
    truth: Volume | None = None
    left_out: tuple = ()

    @property
    def flair_only(self) -> bool:
        return set(self.sequences) == {FLAIR}

    def load(self) -> Case:
        """The sequences read, checked to share one grid, turned to the model's slices."""
        from nibabel import orientations

        reference, flair = self.sequences[FLAIR].read()
        forward, _ = _orientation(reference.affine)
        channels = []
        for number in CHANNELS:
            volume = self.sequences.get(number)
            if volume is None:
                channels.append(flair)
                continue
            image, data = (reference, flair) if number == FLAIR else volume.read()
            self._check_same_grid(reference, data.shape, image.affine, volume)
            channels.append(data)
        images = np.stack([_to_slices(orientations.apply_orientation(to_uint8(c), forward)) for c in channels],
                          axis=-1)
        truth = None
        if self.truth is not None:
            image, data = self.truth.read()
            self._check_same_grid(reference, data.shape, image.affine, self.truth)
            truth = data > 0
        return Case(self.name, images, truth, tuple(sorted(self.sequences)), VolumeGeometry(reference))

    def _check_same_grid(self, reference, shape, affine, volume: Volume) -> None:
        if tuple(shape) != tuple(reference.shape[:3]) or not np.allclose(affine, reference.affine, atol=1e-3):
            raise ScanError(f"{volume}: its grid (shape {tuple(shape)}, affine) differs from the FLAIR's "
                            f"({self.sequences[FLAIR].name}, shape {tuple(reference.shape[:3])}); "
                            "resample it to the FLAIR first")


@dataclasses.dataclass(frozen=True)
class VolumeGeometry:
    """A volume's grid (the FLAIR's nibabel image: shape, affine, header of every mask written)."""

    reference: object

    @property
    def shape(self) -> tuple:
        return tuple(self.reference.shape[:3])

    @property
    def spacing(self) -> tuple:
        """Voxel size in mm along the FLAIR's array axes."""
        return voxel_sizes(self.reference.affine)

    def slice_spacing(self) -> tuple:
        """(row mm, column mm, slice mm) in the model's orientation."""
        return _in_model_axes(self.spacing, self.reference.affine)

    def describe(self) -> str:
        shape = "x".join(str(n) for n in self.shape)
        return f"{shape} voxels of {' x '.join(f'{s:.2f}' for s in self.spacing)} mm"

    def to_native(self, volume: np.ndarray) -> np.ndarray:
        """[slices, 256, 256] values (probabilities or a mask) in the model's orientation -> the
        FLAIR's grid, in its own array order: each slice resized back to its square and uncropped,
        then turned back (linear interpolation; threshold after)."""
        import cv2
        from nibabel import orientations

        _, back = _orientation(self.reference.affine)
        rows, cols, _ = _in_model_axes(self.shape, self.reference.affine)
        side = _square_size(rows, cols)
        top, left = (side - rows) // 2, (side - cols) // 2
        native = np.stack([cv2.resize(s.astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR)
                           [top:top + rows, left:left + cols] for s in volume], axis=2)
        return orientations.apply_orientation(native, back)

    def in_model_axes(self, volume: np.ndarray) -> np.ndarray:
        """A volume on the FLAIR's grid turned to [slices, rows, cols] of axial slices in MODEL_AXES."""
        from nibabel import orientations

        forward, _ = _orientation(self.reference.affine)
        return orientations.apply_orientation(volume, forward).transpose(2, 0, 1)

    def flair_in_model_axes(self, images: np.ndarray) -> np.ndarray:
        return self.in_model_axes(np.asanyarray(self.reference.dataobj).astype(np.float32))

    def mask_files(self, name: str, mask: np.ndarray) -> dict[str, bytes]:
        """{'NAME.nii.gz': a uint8 0/1 NIfTI of `mask` (on the FLAIR's grid) with its affine and header}."""
        return {f"{name}.nii.gz": self._nifti_bytes(mask.astype(np.uint8))}

    def probability_files(self, name: str, probability: np.ndarray) -> dict[str, bytes]:
        return {f"{name}_probabilities.nii.gz": self._nifti_bytes(probability.astype(np.float32))}

    def image_like(self, values: np.ndarray):
        """A NIfTI image of `values` (on the FLAIR's grid, uint8 or float32) with the FLAIR's affine and header."""
        import nibabel as nib

        header = self.reference.header.copy()
        header.set_data_dtype(values.dtype)
        header.set_slope_inter(1.0, 0.0)
        image = nib.Nifti1Image(values, self.reference.affine, header)
        image.set_qform(self.reference.affine, code=int(self.reference.header["qform_code"]) or 1)
        image.set_sform(self.reference.affine, code=int(self.reference.header["sform_code"]) or 1)
        return image

    def _nifti_bytes(self, values: np.ndarray) -> bytes:
        return gzip.compress(self.image_like(values).to_bytes(), compresslevel=6)

    def warnings(self, images: np.ndarray) -> list[str]:
        """Ways this case differs from the Kaggle volumes the models were trained on, and geometry the
        header states two ways."""
        rows_mm, cols_mm, slice_mm = self.slice_spacing()
        slices = images.shape[0]
        warnings = []
        pixdim = tuple(float(z) for z in self.reference.header.get_zooms()[:3])
        if not np.allclose(pixdim, self.spacing, rtol=1e-3, atol=1e-4):
            warnings.append(f"the header's voxel sizes (pixdim {pixdim}) disagree with its affine's "
                            f"({tuple(round(v, 4) for v in self.spacing)}); the affine's are used for mm and mL")
        if not TRAINING_SLICES[0] <= slices <= TRAINING_SLICES[1]:
            warnings.append(f"{slices} axial slices (training volumes have {TRAINING_SLICES[0]}-{TRAINING_SLICES[1]})")
        if not TRAINING_SLICE_MM[0] <= slice_mm <= TRAINING_SLICE_MM[1]:
            warnings.append(f"{slice_mm:.1f} mm between slices (training volumes: about "
                            f"{TRAINING_SLICE_MM[0]:.0f}-{TRAINING_SLICE_MM[1]:.0f} mm); 1 mm isotropic volumes "
                            "such as BraTS are far from the training data")
        flair = images[..., 1]
        background = float((flair[:, :8, :] == 0).mean())
        if background > 0.98 and float((flair == 0).mean()) > 0.6:
            warnings.append("looks skull-stripped (training volumes keep the skull and scalp)")
        return [w if w.startswith("the header") else f"{w}: expect lower accuracy" for w in warnings]


def _orientation(affine):
    """The nibabel transform from an array with this affine to MODEL_AXES, and back."""
    from nibabel import orientations

    current = orientations.io_orientation(affine)
    target = orientations.axcodes2ornt(MODEL_AXES)
    return orientations.ornt_transform(current, target), orientations.ornt_transform(target, current)


def _in_model_axes(values, affine) -> tuple:
    """Per-axis values (a shape, voxel sizes) of an array with `affine`, reordered to MODEL_AXES."""
    forward, _ = _orientation(affine)
    return tuple(values[int(axis)] for axis in np.argsort(forward[:, 0]))


def to_uint8(volume: np.ndarray) -> np.ndarray:
    """A sequence's volume as uint8: kept as it is when it already is uint8-valued, else scaled so
    that the 99.5th percentile of its non-zero voxels becomes 255 (negative values clipped)."""
    if np.issubdtype(volume.dtype, np.integer) and volume.min() >= 0 and volume.max() <= 255:
        return volume.astype(np.uint8)
    volume = np.nan_to_num(volume.astype(np.float32))
    foreground = volume[volume > 0]
    top = float(np.percentile(foreground, 99.5)) if foreground.size else 1.0
    return np.clip(np.round(volume / max(top, 1e-6) * 255.0), 0, 255).astype(np.uint8)


def _square_size(rows: int, cols: int) -> int:
    return max(rows, cols)


def _to_slices(volume: np.ndarray) -> np.ndarray:
    """[rows, cols, slices] in MODEL_AXES -> [slices, 256, 256]: each slice padded to a square
    (centred, zeros) and resized (area averaging down, linear up)."""
    import cv2

    rows, cols, _ = volume.shape
    side = _square_size(rows, cols)
    top, left = (side - rows) // 2, (side - cols) // 2
    out = []
    for k in range(volume.shape[2]):
        square = np.zeros((side, side), volume.dtype)
        square[top:top + rows, left:left + cols] = volume[:, :, k]
        method = cv2.INTER_AREA if side > NATIVE_SIZE else cv2.INTER_LINEAR
        out.append(cv2.resize(square, (NATIVE_SIZE, NATIVE_SIZE), interpolation=method))
    return np.stack(out)


def voxel_sizes(affine) -> tuple:
    """Voxel size in mm along each array axis, from the affine (the lengths of its first three columns)."""
    return tuple(float(v) for v in np.sqrt((np.asarray(affine, np.float64)[:3, :3] ** 2).sum(axis=0)))


def model_axes_affine(spacing: tuple[float, float, float]):
    """The affine of an array in MODEL_AXES order with (row, column, slice) voxel sizes in mm."""
    rows, cols, slices = spacing
    return np.array([[0.0, -cols, 0.0, 0.0], [-rows, 0.0, 0.0, 0.0], [0.0, 0.0, slices, 0.0], [0.0, 0.0, 0.0, 1.0]])


def reoriented(volume: np.ndarray, affine, axcodes: tuple[str, str, str]):
    """`volume` with `affine` turned so that its axes point to `axcodes` (e.g. RAS or LPS): the
    data and its new affine, the same voxels in the same place in the world."""
    from nibabel import orientations

    transform = orientations.ornt_transform(orientations.io_orientation(affine), orientations.axcodes2ornt(axcodes))
    return (orientations.apply_orientation(volume, transform),
            affine @ orientations.inv_ornt_aff(transform, volume.shape))
