"""NIfTI cases: a file, or a folder of cases named the nnU-Net way.

Case layout: one file per channel, `CASE_XXXX.nii.gz` (or `.nii`), and optionally
`CASE_seg.nii.gz`, the true mask (or in a separate labels folder as `CASE.nii.gz`). Which channel
is which sequence: `brainmri_tfds.readers.channels`. A lone NIfTI file, or a case with FLAIR
alone, is FLAIR, copied into the missing sequences as Kaggle stores a patient missing one.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from brainmri_tfds.readers.case import FLAIR, ScanError
from brainmri_tfds.readers.channels import DEFAULT_RULE, find_channel_map
from brainmri_tfds.readers.volume import CaseFiles

SUFFIXES = (".nii.gz", ".nii")
CASE_FILE = re.compile(r"^(?P<case>.+)_(?P<part>\d{4}|seg)\.nii(\.gz)?$")
MAX_VOXELS = 2048**3  # far more than any MRI volume: a header declaring more is damaged


def is_nifti(path: str | Path) -> bool:
    return str(path).endswith(SUFFIXES)


def claims(path: Path) -> bool:
    """A NIfTI file, or a folder with NIfTI files at its top."""
    return is_nifti(path) if path.is_file() else any(is_nifti(p) for p in path.iterdir())


@dataclasses.dataclass(frozen=True)
class NiftiFile:
    """One 3D NIfTI volume."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def __str__(self) -> str:
        return str(self.path)

    def read(self):
        """(nibabel image, its data read whole); ScanError naming the file for a damaged one."""
        import nibabel as nib

        try:
            image = nib.load(str(self.path))
            _check_declared_size(self.path, image)
            data = np.asanyarray(image.dataobj)
        except ScanError:
            raise
        except Exception as err:  # nibabel, numpy's memory map and gzip raise many types for a damaged file
            reason = " ".join(str(err).split()) or type(err).__name__
            raise ScanError(f"{self.path}: not a readable NIfTI file ({type(err).__name__}: {reason})") from None
        affine = np.asarray(image.affine, np.float64)
        if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
            raise ScanError(f"{self.path}: its affine (the sform/qform that places voxels in the body) is not finite "
                            "or not invertible; the header is damaged")
        if data.ndim == 4 and data.shape[3] == 1:
            data = data[..., 0]
        if data.ndim != 3:
            raise ScanError(f"{self.path}: a {data.ndim}D image of shape {data.shape}; one 3D volume per file "
                            "is expected")
        return image, data


def _check_declared_size(path: Path, image) -> None:
    """ScanError when the header declares a shape the file cannot hold: a dimension below 1, more
    voxels than MAX_VOXELS, or more bytes than the file (for .nii.gz: than gzip's stored length)."""
    shape = tuple(int(n) for n in image.header.get_data_shape())
    if not shape or min(shape) < 1:
        raise ScanError(f"{path}: its header declares the shape {shape}; the header is damaged")
    voxels = int(np.prod(shape, dtype=np.float64))
    if voxels > MAX_VOXELS:
        raise ScanError(f"{path}: its header declares {voxels:,} voxels ({' x '.join(map(str, shape))}), far more "
                        "than a scan holds; the header is damaged")
    needed = int(image.header.get_data_offset()) + voxels * image.header.get_data_dtype().itemsize
    if str(path).endswith(".gz"):
        with open(path, "rb") as handle:  # gzip's last 4 bytes: the uncompressed length, modulo 2**32
            handle.seek(-4, 2)
            held = int.from_bytes(handle.read(4), "little")
        short = needed < 2**32 and held < needed
    else:
        held = path.stat().st_size
        short = held < needed
    if short:
        raise ScanError(f"{path}: its header declares {' x '.join(map(str, shape))} voxels ({needed:,} bytes) but the "
                        f"file holds {held:,} bytes; the header is damaged or the file cut short")


def _strip_suffix(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def label_of(labels: Path, case: str) -> NiftiFile:
    """The true mask `labels/CASE.nii.gz` (or .nii) of a case; ScanError when there is none."""
    for suffix in SUFFIXES:
        if (labels / f"{case}{suffix}").is_file():
            return NiftiFile(labels / f"{case}{suffix}")
    raise ScanError(f"{labels}: no true mask {case}.nii.gz for case {case}")


def find(path: Path, labels: Path | None = None, channel_names: dict | None = None) -> list[CaseFiles]:
    """The cases in a NIfTI file or an nnU-Net-style folder, sorted by name; true masks from
    `CASE_seg.nii.gz` beside them or `labels/CASE.nii.gz`."""
    mapping, named_by = find_channel_map(path, channel_names)
    rule = named_by or DEFAULT_RULE
    if path.is_file():
        match = CASE_FILE.match(path.name)
        if match and match["part"] != "seg" and mapping.get(match["part"]) == FLAIR:
            case = match["case"]
        elif match and match["part"] != "seg" and named_by is not None:
            raise ScanError(f"{path}: channel {match['part']} is not FLAIR by {rule}; a case needs its FLAIR")
        else:
            case = _strip_suffix(path.name)  # a lone volume: FLAIR alone
        cases = [CaseFiles(case, {FLAIR: NiftiFile(path)})]
    else:
        grouped: dict[str, dict] = {}
        for file in sorted(p for p in path.iterdir() if is_nifti(p)):
            match = CASE_FILE.match(file.name)
            if match is None:  # a lone volume: FLAIR alone
                grouped.setdefault(_strip_suffix(file.name), {})[FLAIR] = file
            else:
                grouped.setdefault(match["case"], {})[match["part"]] = file
        cases = []
        for case, parts in grouped.items():
            truth = parts.pop("seg", None)
            unknown = sorted(set(parts) - set(mapping))
            if unknown:
                raise ScanError(f"{path / case}: channels {unknown} are not named by {rule}")
            sequences = {mapping[part]: NiftiFile(file) for part, file in parts.items() if mapping[part] is not None}
            left_out = tuple(sorted(file.name for part, file in parts.items() if mapping[part] is None))
            if FLAIR not in sequences:
                raise ScanError(f"{path}: case {case} has no FLAIR (by {rule}); "
                                f"found {sorted(p.name for p in parts.values())}")
            cases.append(CaseFiles(case, sequences, truth and NiftiFile(truth), left_out))
    if labels is not None:
        cases = [dataclasses.replace(c, truth=label_of(labels, c.name)) for c in cases]
    return cases
