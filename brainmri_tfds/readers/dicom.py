"""DICOM series (read by pydicom; each slice's geometry by nibabel's DICOM wrapper).

A folder whose files form one series is FLAIR alone; a folder of several series names each by its
SeriesDescription (FLAIR; "pre" for pre-contrast; "post", "+C" or "Gd" for post-contrast); a
folder of such folders is one case each, named after its folder. True masks: `--labels DIR`
(DIR/CASE.nii.gz).
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from pathlib import Path

import numpy as np

from brainmri_tfds.readers.case import FLAIR, POST, PRE, ScanError
from brainmri_tfds.readers.nifti import label_of
from brainmri_tfds.readers.volume import CaseFiles

SEQUENCE_WORDS = {FLAIR: ("flair",), POST: ("post", "+c", "gd", "gad"), PRE: ("pre",)}  # FLAIR first


def is_dicom(path: Path) -> bool:
    """True for a DICOM file (the 'DICM' marker after its 128-byte preamble)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(132)[128:] == b"DICM"
    except OSError:
        return False


def _holds_dicom(folder: Path) -> bool:
    return any(p.is_file() and is_dicom(p) for p in folder.iterdir())


def claims(path: Path) -> bool:
    """A DICOM file (its folder is read), or a folder with DICOM files at its top or one level down."""
    if path.is_file():
        return is_dicom(path)
    return _holds_dicom(path) or any(d.is_dir() and _holds_dicom(d) for d in path.iterdir())


@dataclasses.dataclass(frozen=True)
class DicomSeries:
    """The files of one DICOM series (one volume), in any order, and where they were found."""

    folder: Path
    files: tuple
    description: str

    @property
    def name(self) -> str:
        return f"{self.folder.name} ({self.description or 'series without a description'})"

    def __str__(self) -> str:
        return f"{self.folder}: DICOM series {self.description!r}"

    def read(self):
        """The series as a NIfTI image and its data: slices sorted along their normal, RAS+ affine."""
        import nibabel as nib
        import pydicom
        from pydicom.pixels import apply_modality_lut

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nibabel calls its DICOM wrappers experimental
            from nibabel.nicom import dicomwrappers

        slices = []
        for path in self.files:
            try:
                dataset = pydicom.dcmread(path)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # nibabel calls its DICOM wrappers experimental
                    wrapper = dicomwrappers.wrapper_from_data(dataset)
                    position, affine = wrapper.slice_indicator, wrapper.affine
                pixels = apply_modality_lut(dataset.pixel_array, dataset)
            except Exception as err:  # pydicom and nibabel raise many types for a broken or foreign file
                raise ScanError(f"{path}: not a readable DICOM image ({' '.join(str(err).split())})") from None
            if pixels.ndim != 2:
                raise ScanError(f"{path}: a DICOM image of shape {pixels.shape}; one 2D slice per file is expected")
            slices.append((position, affine, pixels))
        slices.sort(key=lambda s: s[0])
        positions = [round(float(s[0]), 3) for s in slices]
        if len(set(positions)) < len(positions):
            print(f"warning: {self}: {len(positions) - len(set(positions))} slice(s) share a position with another; "
                  "all are kept in file order", file=sys.stderr, flush=True)
        shapes = {s[2].shape for s in slices}
        if len(shapes) != 1:
            raise ScanError(f"{self}: its slices differ in size {sorted(shapes)}")
        lps = slices[0][1].copy()
        if len(slices) > 1:  # the step between slices, from their positions (any gap or tilt included)
            lps[:3, 2] = (slices[-1][1][:3, 3] - slices[0][1][:3, 3]) / (len(slices) - 1)
        ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # DICOM's patient space is LPS+, NIfTI's RAS+
        data = np.stack([s[2] for s in slices], axis=-1)
        return nib.Nifti1Image(data, ras), data


def _series(folder: Path) -> list[DicomSeries]:
    """The DICOM series among the files directly in `folder`, by SeriesInstanceUID."""
    import pydicom

    grouped: dict[str, list] = {}
    descriptions: dict[str, str] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file() and is_dicom(p)):
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as err:  # pydicom raises many types for a broken file
            raise ScanError(f"{path}: not a readable DICOM file ({' '.join(str(err).split())})") from None
        uid = str(header.get("SeriesInstanceUID", ""))
        grouped.setdefault(uid, []).append(path)
        descriptions[uid] = str(header.get("SeriesDescription", "")).strip()
    return [DicomSeries(folder, tuple(files), descriptions[uid]) for uid, files in grouped.items()]


def _case(folder: Path) -> CaseFiles:
    """One case from the series in `folder`: FLAIR alone, or each named by its description."""
    series = _series(folder)
    if len(series) == 1:
        return CaseFiles(folder.name, {FLAIR: series[0]})
    sequences: dict = {}
    for one in series:
        words = one.description.lower()
        matches = [n for n, keys in SEQUENCE_WORDS.items() if any(k in words for k in keys)]
        number = matches[0] if matches else None  # FLAIR first: "FLAIR post" is still FLAIR
        if number is None or number in sequences:
            names = ", ".join(repr(s.description) for s in series)
            raise ScanError(f"{folder}: {len(series)} DICOM series ({names}) and no way to tell which is "
                            "FLAIR, pre- or post-contrast; put each series in a folder of its own or name them "
                            "in SeriesDescription")
        sequences[number] = one
    if FLAIR not in sequences:
        raise ScanError(f"{folder}: no FLAIR among its DICOM series "
                        f"({', '.join(repr(s.description) for s in series)})")
    return CaseFiles(folder.name, sequences)


def find(path: Path, labels: Path | None = None, channel_names: dict | None = None) -> list[CaseFiles]:
    """One case for a folder of series (or a file of one), or one per sub-folder holding series;
    sorted by name."""
    path = path.parent if path.is_file() else path
    cases = [_case(path)] if _holds_dicom(path) else [_case(d) for d in sorted(path.iterdir())
                                                         if d.is_dir() and _holds_dicom(d)]
    return [dataclasses.replace(c, truth=label_of(labels, c.name)) for c in cases] if labels else cases
