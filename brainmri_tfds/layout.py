"""Find, list and read slices laid out as in Kaggle's LGG download (a zip or a folder).

This module is the one reader of the Kaggle layout: the TFDS builder (both configs) and the
reader of new scans in that layout (`brainmri_tfds/readers/kaggle.py`) go through it, so a slice
is read one way everywhere. It knows nothing
of TFDS or models. File access goes through `etils.epath`, so it works on any filesystem
TensorFlow knows and inside the TFDS test harness.

Layout (Kaggle's `archive.zip`, or the folder it extracts to):

    kaggle_3m/TCGA_<site>_<id>_<date>/TCGA_<site>_<id>_<date>_<n>.tif       256x256x3 uint8
    kaggle_3m/TCGA_<site>_<id>_<date>/TCGA_<site>_<id>_<date>_<n>_mask.tif  256x256 uint8, 0/255
    lgg-mri-segmentation/kaggle_3m/...   the same tree again (read once)
"""

from __future__ import annotations

import dataclasses
import re
import zipfile
from collections.abc import Iterator
from typing import Protocol

import numpy as np
from etils import epath

NATIVE_SIZE = 256  # Kaggle's slices are 256x256; every score is computed at this size
IMAGE_SHAPE = (NATIVE_SIZE, NATIVE_SIZE, 3)
MASK_SHAPE = (NATIVE_SIZE, NATIVE_SIZE)
# Kaggle's slices are 203,102 (image) and 65,746 (mask) bytes. A member declared far larger is
# not an MRI slice (a zip bomb, or the wrong archive) and is refused before it is inflated.
MAX_MEMBER_BYTES = 8 * 1024 * 1024

PATIENT_RE = re.compile(r"^TCGA_[A-Za-z0-9]+_[A-Za-z0-9]+_\d{8}$")
SLICE_RE = re.compile(r"^(?P<patient>TCGA_[A-Za-z0-9]+_[A-Za-z0-9]+_\d{8})_(?P<n>\d+)(?P<mask>_mask)?\.tif$")


class LayoutError(ValueError):
    """The input does not follow the Kaggle layout; the message names the file and the problem."""


@dataclasses.dataclass(frozen=True)
class SliceFiles:
    """Where one slice's image and mask live inside a source."""

    patient_id: str  # the patient folder, e.g. TCGA_CS_4942_19970222
    slice_index: int  # the <n> in the file name (1-based, as Kaggle numbers them)
    image: str  # member name inside the source
    mask: str | None  # None only where masks are optional (new scans)

    @property
    def key(self) -> str:
        return f"{self.patient_id}_{self.slice_index}"


class Source(Protocol):
    """A tree of files: a folder or a zip archive."""

    location: str

    def names(self) -> list[str]: ...

    def fingerprint(self, name: str) -> tuple[int, int]: ...

    def read(self, name: str) -> bytes: ...

    def describe(self, name: str) -> str: ...


class FolderSource:
    """Files under a folder, named by their '/'-separated path relative to it."""

    def __init__(self, root: epath.PathLike):
        self.root = epath.Path(root)
        self.location = str(self.root)

    def names(self) -> list[str]:
        names, pending = [], [self.root]
        while pending:
            for child in pending.pop().iterdir():
                if child.is_dir():
                    pending.append(child)
                else:
                    names.append(str(child.relative_to(self.root)))
        return names

    def fingerprint(self, name: str) -> tuple[int, int]:
        return (self.root.joinpath(name).stat().length, 0)

    def read(self, name: str) -> bytes:
        return self.root.joinpath(name).read_bytes()

    def describe(self, name: str) -> str:
        return str(self.root / name)


class ZipSource:
    """Members of a zip archive, read directly (never extracted to disk)."""

    def __init__(self, path: epath.PathLike):
        self.location = str(path)
        try:
            self._zip = zipfile.ZipFile(epath.Path(path).open("rb"))
        except (zipfile.BadZipFile, OSError) as err:
            raise LayoutError(f"{path}: not a readable zip archive ({err})") from err
        self._infos = {}
        for info in self._zip.infolist():
            if info.is_dir():
                continue
            parts = info.filename.replace("\\", "/").split("/")
            if info.filename.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
                raise LayoutError(f"{path}: member {info.filename!r} points outside the archive; refusing it")
            self._infos[info.filename] = info

    def names(self) -> list[str]:
        return list(self._infos)

    def fingerprint(self, name: str) -> tuple[int, int]:
        info = self._infos[name]
        return (info.file_size, info.CRC)

    def read(self, name: str) -> bytes:
        info = self._infos[name]
        if info.file_size > MAX_MEMBER_BYTES:
            raise LayoutError(
                f"{self.describe(name)}: declares {info.file_size:,} bytes, far beyond an MRI slice; refusing it"
            )
        try:
            with self._zip.open(info) as member:
                data = member.read(MAX_MEMBER_BYTES + 1)
        except (zipfile.BadZipFile, OSError, EOFError, zipfile.LargeZipFile) as err:
            raise LayoutError(f"{self.describe(name)}: unreadable zip member ({err})") from err
        if len(data) > MAX_MEMBER_BYTES:
            raise LayoutError(f"{self.describe(name)}: inflates beyond {MAX_MEMBER_BYTES:,} bytes; refusing it")
        return data

    def describe(self, name: str) -> str:
        return f"{self.location}:{name}"


def _has_patient_folders(folder: epath.Path) -> bool:
    return folder.is_dir() and any(p.is_dir() and PATIENT_RE.match(p.name) for p in folder.iterdir())


def open_source(path: epath.PathLike) -> Source:
    """The source that holds the slices at `path`.

    `path` is Kaggle's zip itself (any name), a folder holding exactly one such zip, the extracted
    `kaggle_3m/` folder, or a folder holding it (directly or as `lgg-mri-segmentation/kaggle_3m/`).
    Raises `LayoutError` listing every place it looked when none of these is there.
    """
    path = epath.Path(path)
    if not path.exists():
        raise LayoutError(f"{path}: no such file or folder")
    if not path.is_dir():
        return ZipSource(path)
    looked = []
    zips = sorted(p for p in path.iterdir() if p.suffix.lower() == ".zip" and not p.is_dir())
    if len(zips) > 1:
        raise LayoutError(
            f"{path}: holds {len(zips)} zip files ({', '.join(p.name for p in zips)}); "
            "keep only Kaggle's archive there"
        )
    if zips:
        return ZipSource(zips[0])
    looked.append(f"{path}/*.zip")
    for candidate in (path, path / "kaggle_3m", path / "lgg-mri-segmentation" / "kaggle_3m"):
        looked.append(f"{candidate}/TCGA_*/")
        if _has_patient_folders(candidate):
            return FolderSource(path)
    raise LayoutError(
        "No Kaggle LGG slices found. Looked for: " + "; ".join(looked)
        + ". Put Kaggle's zip (as downloaded) or its extracted kaggle_3m/ folder there."
    )


def _slice_sort_key(item: SliceFiles) -> tuple[str, int]:
    return (item.patient_id, item.slice_index)


def list_slices(source: Source, masks_required: bool = True) -> list[SliceFiles]:
    """Every slice in `source` exactly once, ordered by patient then slice number (2 before 10).

    A patient folder may appear in several trees (Kaggle's archive holds `kaggle_3m/` twice);
    identical copies are read once, differing copies are an error. With `masks_required=False`
    (new scans) either every image has its mask or none does.
    """
    images: dict[tuple[str, int], str] = {}
    masks: dict[tuple[str, int], str] = {}
    # Shallower trees first, so `kaggle_3m/...` is the copy kept over `lgg-mri-segmentation/...`.
    for name in sorted(source.names(), key=lambda n: (n.count("/"), n)):
        parts = name.split("/")
        filename = parts[-1]
        folder = parts[-2] if len(parts) > 1 else ""
        if not PATIENT_RE.match(folder):
            if SLICE_RE.match(filename):
                raise LayoutError(f"{source.describe(name)}: a slice outside its patient folder {filename.rsplit('_', 1)[0]}/")
            continue  # README.md, data.csv and other files outside patient folders
        if filename.startswith("."):
            continue  # .DS_Store and other hidden files a file manager leaves behind
        match = SLICE_RE.match(filename)
        if not match:
            raise LayoutError(
                f"{source.describe(name)}: unexpected file in a patient folder "
                f"(expected {folder}_<n>.tif or {folder}_<n>_mask.tif)"
            )
        if match["patient"] != folder:
            raise LayoutError(f"{source.describe(name)}: file of patient {match['patient']} inside folder {folder}")
        slot = (folder, int(match["n"]))
        table = masks if match["mask"] else images
        if slot in table:
            if source.fingerprint(table[slot]) != source.fingerprint(name):
                raise LayoutError(
                    f"{source.describe(name)}: differs from {source.describe(table[slot])}, "
                    "two different copies of the same slice"
                )
            continue
        table[slot] = name
    if not images and not masks:
        raise LayoutError(
            f"{source.location}: no Kaggle LGG slices found "
            "(expected kaggle_3m/TCGA_<site>_<id>_<date>/TCGA_<site>_<id>_<date>_<n>.tif)"
        )
    for slot, mask in masks.items():
        if slot not in images:
            raise LayoutError(f"{source.describe(mask)}: mask without its image {slot[0]}_{slot[1]}.tif")
    missing = [name for slot, name in images.items() if slot not in masks]
    if missing and (masks_required or len(missing) < len(images)):
        raise LayoutError(f"{source.describe(missing[0])}: image without its mask (expected {missing[0][:-4]}_mask.tif)")
    slices = [SliceFiles(p, n, image, masks.get((p, n))) for (p, n), image in images.items()]
    return sorted(slices, key=_slice_sort_key)


def _decode(source: Source, name: str) -> np.ndarray:
    import cv2  # heavy import kept lazy

    data = source.read(name)
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if array is None:
        raise LayoutError(f"{source.describe(name)}: unreadable or truncated TIFF")
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_BGR2RGB)  # OpenCV decodes to BGR; Kaggle stores RGB
    return array


def read_image(source: Source, name: str) -> np.ndarray:
    """A 256x256x3 uint8 slice: pre-contrast, FLAIR, post-contrast."""
    image = _decode(source, name)
    if image.shape != IMAGE_SHAPE or image.dtype != np.uint8:
        raise LayoutError(
            f"{source.describe(name)}: image is {'x'.join(map(str, image.shape))} {image.dtype}, "
            "expected 256x256x3 uint8"
        )
    return image


def read_mask(source: Source, name: str) -> np.ndarray:
    """A 256x256x1 uint8 mask in {0, 1} (stored as 0/255)."""
    mask = _decode(source, name)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    if mask.shape != MASK_SHAPE or mask.dtype != np.uint8:
        raise LayoutError(
            f"{source.describe(name)}: mask is {'x'.join(map(str, mask.shape))} {mask.dtype}, expected 256x256 uint8"
        )
    values = np.unique(mask)
    if not np.isin(values, (0, 255)).all():
        odd = [int(v) for v in values if v not in (0, 255)][:5]
        raise LayoutError(f"{source.describe(name)}: mask has values {odd} besides 0 and 255")
    return (mask[..., None] // 255).astype(np.uint8)


def read_slices(source: Source, slices: list[SliceFiles]) -> Iterator[tuple[SliceFiles, np.ndarray, np.ndarray | None]]:
    """(slice, image, mask or None) for each slice, in order."""
    for item in slices:
        image = read_image(source, item.image)
        mask = read_mask(source, item.mask) if item.mask else None
        yield item, image, mask
