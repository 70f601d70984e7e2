"""Phantom patients written in exactly Kaggle's LGG layout, deterministic by seed.

    python -m brainmri_tfds.synthetic OUT --patients N --seed S

writes `OUT/kaggle_3m/TCGA_SY_<id>_<date>/TCGA_SY_<id>_<date>_<n>.tif` (256x256x3 uint8:
pre-contrast, FLAIR, post-contrast) and `..._<n>_mask.tif` (256x256 uint8, 0/255).

Each phantom is a head on a dark background: scalp, skull, a textured brain with noise and
ventricles, changing smoothly from slice to slice, and one FLAIR-bright lesion with an irregular
border spanning about a third of the slices. The three channels differ in contrast as the
sequences do: CSF dark in all, the lesion bright in FLAIR, slightly dark before contrast and
faintly enhancing after it. Patient ids are drawn so that every split (see `splits.py`) holds
its share of patients even for a handful of them.
"""

from __future__ import annotations

import argparse
import string
import sys
from pathlib import Path

import numpy as np
from etils import epath

from brainmri_tfds.layout import NATIVE_SIZE
from brainmri_tfds.splits import SPLIT_FRACTIONS, split_of

DEFAULT_SLICES = (16, 24)  # slices per patient, drawn in [low, high]
# Mean intensity of each tissue in (pre-contrast, FLAIR, post-contrast).
SCALP = np.array([150.0, 95.0, 160.0])
BRAIN = np.array([95.0, 105.0, 100.0])
CSF = np.array([30.0, 22.0, 38.0])
LESION_DELTA = np.array([-18.0, 95.0, 22.0])


def split_quotas(n_patients: int) -> dict[str, int]:
    """How many of `n_patients` phantoms go to each split: about 80/10/10, none empty from 3 up."""
    quotas = {name: round(n_patients * fraction) for name, fraction in SPLIT_FRACTIONS[1:]}
    if n_patients >= len(SPLIT_FRACTIONS):
        quotas = {name: max(1, count) for name, count in quotas.items()}
    quotas = {SPLIT_FRACTIONS[0][0]: n_patients - sum(quotas.values()), **quotas}
    return quotas


def patient_ids(n_patients: int, seed: int) -> list[str]:
    """Kaggle-style folder names `TCGA_SY_<id>_<date>`, filling each split's quota in turn."""
    rng = np.random.default_rng([seed, 7919])
    quotas = split_quotas(n_patients)
    alphabet = np.array(list(string.ascii_uppercase + string.digits))
    ids: list[str] = []
    while len(ids) < n_patients:
        code = "".join(rng.choice(alphabet, 4))
        date = f"{rng.integers(1985, 2005)}{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}"
        candidate = f"TCGA_SY_{code}_{date}"
        split = split_of(candidate)
        if quotas[split] > 0 and candidate not in ids:
            quotas[split] -= 1
            ids.append(candidate)
    return ids


def _smooth_field(rng: np.random.Generator, sigma: float) -> np.ndarray:
    import cv2

    field = cv2.GaussianBlur(rng.standard_normal((NATIVE_SIZE, NATIVE_SIZE)), (0, 0), sigma)
    return field / (field.std() + 1e-8)


def make_patient(rng: np.random.Generator, n_slices: int) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [n, 256, 256, 3], masks uint8 [n, 256, 256] in {0, 255}) for one phantom."""
    y, x = np.mgrid[0:NATIVE_SIZE, 0:NATIVE_SIZE].astype(np.float32)
    cx, cy = NATIVE_SIZE / 2 + rng.normal(0, 5, 2)
    head_a, head_b = rng.uniform(78, 92), rng.uniform(96, 110)
    texture = (_smooth_field(rng, 5.0), _smooth_field(rng, 5.0))
    fine = (_smooth_field(rng, 1.5), _smooth_field(rng, 1.5))
    # The lesion: a blob whose radius follows a few angular harmonics, drifting with depth.
    span = n_slices * rng.uniform(0.14, 0.2)  # half-extent in slices: about a third overall
    lesion_z = rng.uniform(0.35, 0.65) * n_slices
    angle0, offset = rng.uniform(0, 2 * np.pi), rng.uniform(0.15, 0.45)
    lesion_x = cx + offset * head_a * np.cos(angle0)
    lesion_y = cy + offset * head_b * np.sin(angle0)
    radius0 = rng.uniform(12, 28)
    harmonics = [(k, rng.uniform(0.04, 0.22) / np.sqrt(k - 1), rng.uniform(0, 2 * np.pi)) for k in range(2, 7)]
    theta = np.arctan2(y - lesion_y, x - lesion_x)
    lesion_r = np.hypot(x - lesion_x, y - lesion_y)
    images = np.zeros((n_slices, NATIVE_SIZE, NATIVE_SIZE, 3), np.uint8)
    masks = np.zeros((n_slices, NATIVE_SIZE, NATIVE_SIZE), np.uint8)
    for z in range(n_slices):
        depth = (z + 0.5) / n_slices
        scale = max(0.35, np.sqrt(max(0.0, 1 - ((depth - 0.45) / 0.62) ** 2)))
        d = np.hypot((x - cx) / (head_a * scale), (y - cy) / (head_b * scale))
        phase = np.pi * depth
        tex = np.cos(phase) * texture[0] + np.sin(phase) * texture[1]
        grain = np.cos(phase) * fine[0] + np.sin(phase) * fine[1]
        image = np.zeros((NATIVE_SIZE, NATIVE_SIZE, 3), np.float32)
        scalp = (d >= 0.93) & (d < 1.0)
        brain = d < 0.88
        image[scalp] = SCALP
        image[brain] = BRAIN
        image += (brain[..., None] * (10 * tex + 4 * grain)[..., None]) * np.array([1.0, 1.2, 0.9])
        if 0.3 < depth < 0.72:  # two lateral ventricles, largest mid-volume
            vs = np.sin(np.pi * (depth - 0.3) / 0.42)
            for side in (-1, 1):
                vx, vy = cx + side * 11 * scale, cy - 6
                vent = ((x - vx) / (7 * vs + 1)) ** 2 + ((y - vy) / (24 * vs + 1)) ** 2 < 1
                image[vent & brain] = CSF
        if abs(z - lesion_z) < span:
            shrink = np.sqrt(1 - ((z - lesion_z) / span) ** 2)
            border = 1 + sum(a * np.cos(k * theta + p + 0.8 * depth * k) for k, a, p in harmonics)
            inside = lesion_r - radius0 * shrink * border
            lesion = (inside < 0) & brain
            soft = 1 / (1 + np.exp(inside / 1.5)) * brain  # partial-volume edge in the image
            image += soft[..., None] * (LESION_DELTA + np.array([0, 12, 4]) * tex[..., None])
            masks[z][lesion] = 255
        head = d < 1.0
        image += rng.normal(0, 1, image.shape) * np.where(head, 5.0, 1.5)[..., None]
        images[z] = np.clip(image, 0, 255).astype(np.uint8)
    return images, masks


def write_patients(
    out_dir: epath.PathLike,
    n_patients: int,
    seed: int = 0,
    splits: tuple[str, ...] | None = None,
    slices: tuple[int, int] = DEFAULT_SLICES,
) -> list[str]:
    """Writes phantoms under `out_dir/kaggle_3m/`; returns the patient ids written.

    `splits` writes only the patients of those splits; every patient is the same whichever
    subset is written.
    """
    import cv2

    if n_patients < 1:
        raise ValueError(f"n_patients must be at least 1, got {n_patients}")
    root = epath.Path(out_dir) / "kaggle_3m"
    written = []
    for number, patient in enumerate(patient_ids(n_patients, seed)):
        if splits is not None and split_of(patient) not in splits:
            continue
        rng = np.random.default_rng([seed, number])
        images, masks = make_patient(rng, int(rng.integers(slices[0], slices[1] + 1)))
        folder = root / patient
        folder.mkdir(parents=True, exist_ok=True)
        for n, (image, mask) in enumerate(zip(images, masks), start=1):
            ok_image, image_tif = cv2.imencode(".tif", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            ok_mask, mask_tif = cv2.imencode(".tif", mask)
            if not (ok_image and ok_mask):
                raise RuntimeError(f"OpenCV could not encode slice {n} of {patient}")
            (folder / f"{patient}_{n}.tif").write_bytes(image_tif.tobytes())
            (folder / f"{patient}_{n}_mask.tif").write_bytes(mask_tif.tobytes())
        written.append(patient)
    return written


def write_nifti_cases(
    out_dir: str,
    n_patients: int,
    seed: int = 0,
    axcodes: tuple[str, str, str] = ("R", "A", "S"),
    spacing: tuple[float, float, float] = (0.9, 0.9, 5.0),
    sequences: tuple[str, ...] = ("0000", "0001", "0002"),
    slices: tuple[int, int] = DEFAULT_SLICES,
) -> list[str]:
    """The same phantoms as `write_patients` (same ids and seed), written as nnU-Net-style NIfTI
    cases instead: `<id>_0000.nii.gz` (pre-contrast), `_0001` (FLAIR), `_0002` (post-contrast), the
    ones in `sequences`, and `<id>_seg.nii.gz` (0/1). The volume's axes point to `axcodes` (e.g.
    RAS or LPS) with `spacing` = (row, column, slice) voxel sizes in mm of Kaggle's slice layout."""
    import nibabel as nib

    from brainmri_tfds.readers.volume import model_axes_affine, reoriented

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for number, patient in enumerate(patient_ids(n_patients, seed)):
        rng = np.random.default_rng([seed, number])
        images, masks = make_patient(rng, int(rng.integers(slices[0], slices[1] + 1)))
        volumes = {f"{k:04d}": images[..., k] for k in range(3)}
        volumes["seg"] = (masks > 0).astype(np.uint8)
        for part, volume in volumes.items():
            if part != "seg" and part not in sequences:
                continue
            data, affine = reoriented(volume.transpose(1, 2, 0), model_axes_affine(spacing), axcodes)
            nib.save(nib.Nifti1Image(np.ascontiguousarray(data), affine), str(out / f"{patient}_{part}.nii.gz"))
        written.append(patient)
    return written


DICOM_DESCRIPTIONS = {"0000": "T1 pre", "0001": "FLAIR", "0002": "T1 post +C"}


def write_dicom_case(
    out_dir: str,
    seed: int = 0,
    sequences: tuple[str, ...] = ("0000", "0001", "0002"),
    spacing: tuple[float, float, float] = (0.9, 0.9, 5.0),
    slices: tuple[int, int] = DEFAULT_SLICES,
    descriptions: dict | None = None,
) -> tuple[str, np.ndarray]:
    """The first phantom of `write_patients(..., seed)` as DICOM MR series in `out_dir` (one file
    per slice, axial, rows anterior to posterior and columns right to left as Kaggle shows them;
    `descriptions` names each sequence's series, DICOM_DESCRIPTIONS by default). Returns the
    patient id and its true mask [slices, 256, 256] bool."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    patient = patient_ids(1, seed)[0]
    rng = np.random.default_rng([seed, 0])
    images, masks = make_patient(rng, int(rng.integers(slices[0], slices[1] + 1)))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    study = generate_uid(entropy_srcs=[patient, "study"])
    for number in sequences:
        series = generate_uid(entropy_srcs=[patient, number])
        for k, image in enumerate(images[..., int(number)]):
            instance = generate_uid(entropy_srcs=[patient, number, str(k)])
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MRImageStorage, instance
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = Dataset()
            ds.file_meta = meta
            ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = MRImageStorage, instance, "MR"
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.PatientID = study, series, patient
            ds.SeriesDescription = (descriptions or DICOM_DESCRIPTIONS)[number]
            ds.InstanceNumber = k + 1
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]  # columns toward the patient's left, rows posterior
            ds.ImagePositionPatient = [0.0, 0.0, k * spacing[2]]  # slices inferior to superior
            ds.PixelSpacing, ds.SliceThickness = [spacing[0], spacing[1]], spacing[2]
            ds.Rows, ds.Columns = image.shape
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            ds.PixelData = image.astype(np.uint16).tobytes()
            ds.save_as(out / f"{number}_{k + 1:03d}.dcm", enforce_file_format=True)
    return patient, masks > 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m brainmri_tfds.synthetic",
        description="Write phantom LGG patients in Kaggle's layout (OUT/kaggle_3m/TCGA_*/...), or with --nifti "
                    "as NIfTI cases named the nnU-Net way (OUT/<id>_0000/0001/0002.nii.gz and <id>_seg.nii.gz).",
    )
    parser.add_argument("out", help="folder to write into (created if missing)")
    parser.add_argument("--patients", type=int, default=20, help="number of patients (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--slices", type=int, nargs=2, default=DEFAULT_SLICES, metavar=("MIN", "MAX"),
        help=f"slices per patient, drawn in [MIN, MAX] (default {DEFAULT_SLICES[0]} {DEFAULT_SLICES[1]})",
    )
    parser.add_argument("--nifti", action="store_true", help="NIfTI cases instead of Kaggle's layout")
    args = parser.parse_args(argv)
    if args.patients < 1 or not 1 <= args.slices[0] <= args.slices[1]:
        parser.error("--patients must be >= 1 and --slices MIN MAX must satisfy 1 <= MIN <= MAX")
    if args.nifti:
        written = write_nifti_cases(args.out, args.patients, args.seed, slices=tuple(args.slices))
        print(f"wrote {len(written)} phantom NIfTI cases to {args.out}")
        return 0
    written = write_patients(args.out, args.patients, args.seed, slices=tuple(args.slices))
    print(f"wrote {len(written)} phantom patients to {epath.Path(args.out) / 'kaggle_3m'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
