"""New scans, whatever their format, as one case record (`Case`): the readers and their registry.

    cases = find_cases("scans/")        # NIfTI file or folder, DICOM series, Kaggle's folder or zip
    case = cases[0].load()              # images uint8 [n, 256, 256, 3] as Kaggle stores them, truth, geometry
    mask_files = case.geometry.mask_files(case.name, case.geometry.to_native(mask_256) > 0.5)

The formats, asked in order (READERS): NIfTI (`nifti`: a file, or a folder of nnU-Net-named
cases), DICOM (`dicom`: a series, or folders of them) and Kaggle's TIFF slices (`kaggle`, which
takes whatever the others leave and says what it lacks). A format is one module with
`claims(path) -> bool` and `find(path, labels, channel_names) -> list of case sources` (each with
`name`, `flair_only`, `left_out` and `load() -> Case`); adding one is that module and its place
in READERS.
"""

from __future__ import annotations

from pathlib import Path

from brainmri_tfds.readers import dicom, kaggle, nifti
from brainmri_tfds.readers.case import CHANNELS, FLAIR, SEQUENCE_LABELS, Case, CaseSource, FlairAlone, ScanError
from brainmri_tfds.readers.channels import add_channel_names_argument

READERS = (nifti, dicom, kaggle)

__all__ = ["CHANNELS", "FLAIR", "READERS", "SEQUENCE_LABELS", "Case", "CaseSource", "FlairAlone", "ScanError",
           "add_channel_names_argument", "find_cases"]


def find_cases(path: str | Path, labels: str | Path | None = None, channel_names: dict | None = None) -> list:
    """The cases at `path`, read by the first reader in READERS that claims it; `labels`, a folder
    of true masks named CASE.nii.gz; `channel_names`, which NIfTI channel is which sequence.
    ScanError (or layout.LayoutError, both ValueErrors) naming the file for input none can read."""
    path = Path(path)
    if not path.exists():
        raise ScanError(f"{path}: no such file or folder")
    reader = next(r for r in READERS if r.claims(path))
    cases = reader.find(path, Path(labels) if labels is not None else None, channel_names)
    if not cases:
        raise ScanError(f"{path}: no cases found")
    return cases
