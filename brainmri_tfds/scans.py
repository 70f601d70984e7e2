"""New scans as clinics hold them: NIfTI volumes or DICOM series in, each brought to the slices the
model knows, and masks written back on the scan's own grid.

    cases = find_cases("scans/")            # a NIfTI file, a folder of nnU-Net-style cases, or DICOM
    scan = load_case(cases[0])              # slices uint8 [n, 256, 256, 3], as Kaggle stores them
    mask_image = scan.to_native(mask_256)   # a nibabel image: the FLAIR's exact shape and affine

Case layout: one file per channel, `CASE_XXXX.nii.gz` as nnU-Net names them, and optionally
`CASE_seg.nii.gz`, the true mask (or in a separate labels folder as `CASE.nii.gz`). nnU-Net fixes
no channel order; which channel is which sequence comes, first found, from `channel_names`
(`--channel-names 0000=T1,0001=T1ce,0002=T2,0003=FLAIR`), from an nnU-Net `dataset.json` in or
beside the input folder (its "channel_names"), or else from this project's own rule: `_0000`
pre-contrast, `_0001` FLAIR, `_0002` post-contrast (`DEFAULT_CHANNELS`). The usual names map to
the model's sequences (`SEQUENCE_NAMES`: FLAIR; T1/T1w/T1n/pre-contrast; T1ce/T1c/T1Gd/
post-contrast); T2 is left out with a note; any other name is an error naming it. A lone NIfTI
file, or a case with FLAIR alone, is FLAIR, copied into the missing sequences as Kaggle stores a
patient missing one.

DICOM (read by pydicom; each slice's geometry by nibabel's DICOM wrapper): a folder whose files
form one series is FLAIR alone; a folder of several series names each by its SeriesDescription
(FLAIR; "pre" for pre-contrast; "post", "+C" or "Gd" for post-contrast); a folder of such folders
is one case each, named after its folder.

Geometry goes through nibabel's orientation tools and the affine, never the array's shape: each
volume is turned so that its slices are axial with rows running anterior to posterior, columns
from the patient's right to left and slices from inferior to superior (Kaggle's slices are DICOM
axial displays); each slice is padded to a square and resized to 256x256. `to_native` undoes
all of it. Intensities become uint8 per sequence (the 99.5th percentile of the non-zero voxels
-> 255; uint8 data is kept as it is); the model's own normalisation follows, as in training.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from brainmri_tfds.layout import NATIVE_SIZE

MODEL_AXES = ("P", "L", "S")  # where increasing rows, columns and slices point
CHANNELS = ("0000", "0001", "0002")  # the model's sequences, in Kaggle's order: pre-contrast, FLAIR, post-contrast
PRE, FLAIR, POST = CHANNELS
SEQUENCE_LABELS = {PRE: "pre-contrast", FLAIR: "FLAIR", POST: "post-contrast"}
DEFAULT_CHANNELS = {PRE: PRE, FLAIR: FLAIR, POST: POST}  # this project's rule: file channel -> sequence
DEFAULT_RULE = "this project's rule (_0000 pre-contrast, _0001 FLAIR, _0002 post-contrast)"
# Channel names as people write them (lower case, without spaces, '-', '_' or '+') -> the model's
# sequence, or None: a sequence the model does not take (left out with a note).
SEQUENCE_NAMES = {
    **dict.fromkeys(("flair", "t2flair"), FLAIR),
    **dict.fromkeys(("t1", "t1w", "t1n", "t1pre", "pre", "precontrast", "t1native"), PRE),
    **dict.fromkeys(("t1ce", "t1c", "t1gd", "t1gad", "t1post", "post", "postcontrast", "t1contrast"), POST),
    **dict.fromkeys(("t2", "t2w"), None),
}
NIFTI_SUFFIXES = (".nii.gz", ".nii")
CASE_FILE = re.compile(r"^(?P<case>.+)_(?P<part>\d{4}|seg)\.nii(\.gz)?$")
# Kaggle's volumes: 20-88 axial slices of about 1 x 1 mm in-plane (256x256), not skull-stripped.
TRAINING_SLICES = (20, 88)
TRAINING_SLICE_MM = (2.0, 7.0)


class ScanError(ValueError):
    """A scan that cannot be read as a case: one line naming the file and what is wrong."""


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


@dataclasses.dataclass(frozen=True)
class CaseFiles:
    """The files of one case: the model's sequence (CHANNELS) -> path, the true mask if given, and
    the files left out (a sequence the model does not take)."""

    case: str
    sequences: dict
    truth: Path | None = None
    left_out: tuple = ()

    @property
    def flair_only(self) -> bool:
        return set(self.sequences) == {FLAIR}


def sequence_of(name: str, where: str) -> str | None:
    """The model's sequence a channel name means (None: one it does not take); ScanError naming
    `where` for a name it does not know."""
    key = re.sub(r"[\s_+\-]", "", str(name).lower())
    if key not in SEQUENCE_NAMES:
        raise ScanError(f"{where}: channel name {name!r} is none the model knows; use FLAIR, T1 (pre-contrast), "
                        "T1ce (post-contrast) or T2 (left out)")
    return SEQUENCE_NAMES[key]


def channel_map(names: dict, where: str) -> dict[str, str | None]:
    """{file channel '0000'..: name} (dataset.json's keys '0', '1', ... too) -> {file channel: the
    model's sequence or None}; ScanError naming `where` for an unknown name, a sequence named
    twice, or no FLAIR."""
    mapping = {}
    for key, name in names.items():
        if not str(key).isdigit():
            raise ScanError(f"{where}: channel {key!r} is not a number (expected 0000=FLAIR or 0=FLAIR)")
        mapping[f"{int(key):04d}"] = sequence_of(name, where)
    taken = [s for s in mapping.values() if s is not None]
    twice = sorted({SEQUENCE_LABELS[s] for s in taken if taken.count(s) > 1})
    if twice:
        raise ScanError(f"{where}: more than one channel is {', '.join(twice)}")
    if FLAIR not in taken:
        raise ScanError(f"{where}: no channel is FLAIR ({names}); the model needs FLAIR")
    return mapping


def parse_channel_names(text: str) -> dict[str, str]:
    """'0000=T1,0001=T1ce,0003=FLAIR' -> {'0000': 'T1', ...} (an argparse type: a malformed item is
    argparse.ArgumentTypeError)."""
    import argparse

    names = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, name = item.partition("=")
        if not sep or not key.strip() or not name.strip():
            raise argparse.ArgumentTypeError(f"{item!r} is not CHANNEL=NAME (e.g. 0003=FLAIR)")
        names[key.strip()] = name.strip()
    if not names:
        raise argparse.ArgumentTypeError("no CHANNEL=NAME given")
    return names


def add_channel_names_argument(parser) -> None:
    """--channel-names, as brainmri-predict and evaluate.py take it."""
    parser.add_argument("--channel-names", type=parse_channel_names, metavar="CHANNEL=NAME,...",
                        help="NIfTI input: which file channel is which sequence, e.g. 0000=T1,0001=T1ce,0002=T2,"
                             "0003=FLAIR (default: dataset.json in or beside the input, else this project's rule: "
                             "_0000 pre-contrast, _0001 FLAIR, _0002 post-contrast)")


def find_channel_map(path: Path, names: dict | None = None) -> tuple[dict[str, str | None], str | None]:
    """(file channel -> the model's sequence, where the names came from): `names` if given, else an
    nnU-Net dataset.json in or beside `path` (its folder, for a file); else DEFAULT_CHANNELS, and
    None for where (no one named the channels)."""
    if names:
        return channel_map(names, "--channel-names"), "--channel-names"
    folder = path if path.is_dir() else path.parent
    for candidate in (folder / "dataset.json", folder.parent / "dataset.json"):
        if candidate.is_file():
            import json

            try:
                described = json.loads(candidate.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise ScanError(f"{candidate}: not valid JSON ({err})") from None
            listed = described.get("channel_names", described.get("modality")) if isinstance(described, dict) else None
            if not isinstance(listed, dict):
                raise ScanError(f"{candidate}: no \"channel_names\" (an nnU-Net dataset.json names its channels there)")
            return channel_map(listed, str(candidate)), str(candidate)
    return dict(DEFAULT_CHANNELS), None


def _strip_suffix(name: str) -> str:
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_nifti(path: str | Path) -> bool:
    return str(path).endswith(NIFTI_SUFFIXES)


def is_dicom(path: Path) -> bool:
    """True for a DICOM file (the 'DICM' marker after its 128-byte preamble)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(132)[128:] == b"DICM"
    except OSError:
        return False


def holds_volumes(path: str | Path) -> bool:
    """True for a NIfTI file, or a folder holding NIfTI or DICOM files (at its top or one level
    down), rather than Kaggle's TIFF slices."""
    path = Path(path)
    if path.is_file():
        return is_nifti(path) or is_dicom(path)
    if not path.is_dir():
        return False
    files = [p for p in path.iterdir() if p.is_file()] + [p for d in path.iterdir() if d.is_dir()
                                                         for p in d.iterdir() if p.is_file()]
    return any(is_nifti(p) or is_dicom(p) for p in files)


SEQUENCE_WORDS = {"0001": ("flair",), "0002": ("post", "+c", "gd", "gad"), "0000": ("pre",)}


def _dicom_series(folder: Path) -> list[DicomSeries]:
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


def _dicom_case(folder: Path) -> CaseFiles:
    """One case from the series in `folder`: FLAIR alone, or each named by its description."""
    series = _dicom_series(folder)
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


def find_cases(path: str | Path, labels: str | Path | None = None,
               channel_names: dict | None = None) -> list[CaseFiles]:
    """The cases in a NIfTI file, an nnU-Net-style folder or DICOM series, sorted by name; true
    masks from `CASE_seg.nii.gz` beside them or `labels/CASE.nii.gz`. NIfTI channels are mapped
    to the model's sequences by `find_channel_map` (`channel_names`, dataset.json, or the default)."""
    path = Path(path)
    if path.is_dir() and not any(is_nifti(p) for p in path.iterdir()):
        if any(p.is_file() and is_dicom(p) for p in path.iterdir()):
            cases = [_dicom_case(path)]
        else:
            cases = [_dicom_case(d) for d in sorted(path.iterdir())
                     if d.is_dir() and any(p.is_file() and is_dicom(p) for p in d.iterdir())]
        if not cases:
            raise ScanError(f"{path}: no NIfTI files (.nii or .nii.gz) and no DICOM series")
        return [dataclasses.replace(c, truth=_label_of(Path(labels), c.case)) for c in cases] if labels else cases
    if not path.exists():
        raise ScanError(f"{path}: no such file or folder")
    mapping, named_by = find_channel_map(path, channel_names)
    rule = named_by or DEFAULT_RULE
    if path.is_file():
        if not is_nifti(path):
            raise ScanError(f"{path}: not a NIfTI file (.nii or .nii.gz)")
        match = CASE_FILE.match(path.name)
        if match and match["part"] != "seg" and mapping.get(match["part"]) == FLAIR:
            case = match["case"]
        elif match and match["part"] != "seg" and named_by is not None:
            raise ScanError(f"{path}: channel {match['part']} is not FLAIR by {rule}; a case needs its FLAIR")
        else:
            case = _strip_suffix(path.name)  # a lone volume: FLAIR alone
        cases = [CaseFiles(case, {FLAIR: path})]
    else:
        grouped: dict[str, dict] = {}
        for file in sorted(p for p in path.iterdir() if is_nifti(p)):
            match = CASE_FILE.match(file.name)
            if match is None:  # a lone volume: FLAIR alone
                grouped.setdefault(_strip_suffix(file.name), {})[FLAIR] = file
            else:
                grouped.setdefault(match["case"], {})[match["part"]] = file
        if not grouped:
            raise ScanError(f"{path}: no NIfTI files (.nii or .nii.gz)")
        cases = []
        for case, parts in grouped.items():
            truth = parts.pop("seg", None)
            unknown = sorted(set(parts) - set(mapping))
            if unknown:
                raise ScanError(f"{path / case}: channels {unknown} are not named by {rule}")
            sequences = {mapping[part]: file for part, file in parts.items() if mapping[part] is not None}
            left_out = tuple(sorted(file.name for part, file in parts.items() if mapping[part] is None))
            if FLAIR not in sequences:
                raise ScanError(f"{path}: case {case} has no FLAIR (by {rule}); "
                                f"found {sorted(p.name for p in parts.values())}")
            cases.append(CaseFiles(case, sequences, truth, left_out))
    if labels is not None:
        cases = [dataclasses.replace(c, truth=_label_of(Path(labels), c.case)) for c in cases]
    return cases


def _label_of(labels: Path, case: str) -> Path:
    for suffix in NIFTI_SUFFIXES:
        if (labels / f"{case}{suffix}").is_file():
            return labels / f"{case}{suffix}"
    raise ScanError(f"{labels}: no true mask {case}.nii.gz for case {case}")


def _load(path):
    """The nibabel image of a 3D NIfTI file or a DICOM series, its data read whole (a broken file fails here)."""
    import nibabel as nib

    if isinstance(path, DicomSeries):
        return _load_dicom(path)

    try:
        image = nib.load(str(path))
        _check_declared_size(path, image)
        data = np.asanyarray(image.dataobj)
    except ScanError:
        raise
    except Exception as err:  # nibabel, numpy's memory map and gzip raise many types for a damaged file
        reason = " ".join(str(err).split()) or type(err).__name__
        raise ScanError(f"{path}: not a readable NIfTI file ({type(err).__name__}: {reason})") from None
    affine = np.asarray(image.affine, np.float64)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise ScanError(f"{path}: its affine (the sform/qform that places voxels in the body) is not finite or "
                        "not invertible; the header is damaged")
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ScanError(f"{path}: a {data.ndim}D image of shape {data.shape}; one 3D volume per file is expected")
    return image, data


MAX_VOXELS = 2048**3  # far more than any MRI volume: a header declaring more is damaged


def _check_declared_size(path, image) -> None:
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
        held = Path(path).stat().st_size
        short = held < needed
    if short:
        raise ScanError(f"{path}: its header declares {' x '.join(map(str, shape))} voxels ({needed:,} bytes) but the "
                        f"file holds {held:,} bytes; the header is damaged or the file cut short")


def _load_dicom(series: DicomSeries):
    """A DICOM series as a NIfTI image: slices sorted along their normal, RAS+ affine."""
    import warnings

    import nibabel as nib
    import pydicom
    from pydicom.pixels import apply_modality_lut

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel calls its DICOM wrappers experimental
        from nibabel.nicom import dicomwrappers

    slices = []
    for path in series.files:
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
        import sys

        print(f"warning: {series}: {len(positions) - len(set(positions))} slice(s) share a position with another; "
              "all are kept in file order", file=sys.stderr, flush=True)
    shapes = {s[2].shape for s in slices}
    if len(shapes) != 1:
        raise ScanError(f"{series}: its slices differ in size {sorted(shapes)}")
    lps = slices[0][1].copy()
    if len(slices) > 1:  # the step between slices, from their positions (any gap or tilt included)
        lps[:3, 2] = (slices[-1][1][:3, 3] - slices[0][1][:3, 3]) / (len(slices) - 1)
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # DICOM's patient space is LPS+, NIfTI's RAS+
    data = np.stack([s[2] for s in slices], axis=-1)
    return nib.Nifti1Image(data, ras), data


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


@dataclasses.dataclass
class Scan:
    """One case ready for the model, and what it takes to write a mask back."""

    case: str
    images: np.ndarray  # uint8 [slices, 256, 256, 3]: pre-contrast, FLAIR, post-contrast
    reference: object  # the FLAIR's nibabel image: shape, affine and header of every mask written
    truth: np.ndarray | None  # bool, on the FLAIR's grid (its array order), if given
    sequences: tuple  # which sequences were found (the others hold FLAIR)

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

    def mask_image(self, mask: np.ndarray):
        """A uint8 0/1 NIfTI image of `mask` (on the FLAIR's grid) with the FLAIR's affine and header."""
        return self.image_like(mask.astype(np.uint8))

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

    def domain_warnings(self) -> list[str]:
        """Ways this case differs from the Kaggle volumes the models were trained on, and geometry the
        header states two ways."""
        rows_mm, cols_mm, slice_mm = self.slice_spacing()
        slices = self.images.shape[0]
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
        flair = self.images[..., 1]
        background = float((flair[:, :8, :] == 0).mean())
        if background > 0.98 and float((flair == 0).mean()) > 0.6:
            warnings.append("looks skull-stripped (training volumes keep the skull and scalp)")
        return [w if w.startswith("the header") else f"{w}: expect lower accuracy" for w in warnings]


def load_case(case: CaseFiles) -> Scan:
    """The case's sequences read, checked to share one grid, turned to the model's slices."""
    from nibabel import orientations

    reference, flair = _load(case.sequences[FLAIR])
    forward, _ = _orientation(reference.affine)
    channels = []
    for number in CHANNELS:
        path = case.sequences.get(number)
        if path is None:
            channels.append(flair)
            continue
        image, data = (reference, flair) if number == FLAIR else _load(path)
        _check_same_grid(case.sequences[FLAIR], reference, data.shape, image.affine, path)
        channels.append(data)
    images = np.stack([_to_slices(orientations.apply_orientation(to_uint8(c), forward)) for c in channels], axis=-1)
    truth = None
    if case.truth is not None:
        image, data = _load(case.truth)
        _check_same_grid(case.sequences[FLAIR], reference, data.shape, image.affine, case.truth)
        truth = data > 0
    return Scan(case.case, images, reference, truth, tuple(sorted(case.sequences)))


def _check_same_grid(flair_path: Path, reference, shape, affine, path: Path) -> None:
    if tuple(shape) != tuple(reference.shape[:3]) or not np.allclose(affine, reference.affine, atol=1e-3):
        raise ScanError(f"{path}: its grid (shape {tuple(shape)}, affine) differs from the FLAIR's "
                        f"({flair_path.name}, shape {tuple(reference.shape[:3])}); resample it to the FLAIR first")


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
