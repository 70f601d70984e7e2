"""The readers (brainmri_tfds.readers, evaluate.py --input): the same phantom gives the same slices
and the same mask whatever the file's format and orientation; masks go back on the input's exact
grid; sizes in mL and mm; bad files are one clear error with nothing written."""

import gzip
import json

import cv2
import nibabel as nib
import numpy as np
import pytest

import evaluate
from brainmri_tfds import layout, readers, synthetic
from tuning.evaluation.scoring import hd95_mm, tumor_measures

SPACING = (0.9, 0.9, 5.0)  # anisotropic, as Kaggle's volumes are
ORIENTATIONS = [("R", "A", "S"), ("L", "P", "S"), ("P", "S", "R")]  # RAS, LPS, and a sagittal-first file


def _kaggle_slices(root, patient):
    """The phantom's slices as Kaggle's files hold them, in slice order (read here with the layout module)."""
    source = layout.open_source(root)
    read = sorted((item.slice_index, image, mask) for item, image, mask in layout.read_slices(
        source, layout.list_slices(source)) if item.patient_id == patient)
    return np.stack([r[1] for r in read]), np.stack([r[2][..., 0] for r in read]).astype(bool)


def test_each_format_has_its_reader_and_gives_the_same_record(phantoms):
    root, patient, folders = phantoms
    images, masks = _kaggle_slices(root / "kaggle", patient)
    assert [r.__name__.rsplit(".", 1)[1] for r in readers.READERS] == ["nifti", "dicom", "kaggle"]
    (kaggle,) = readers.find_cases(root / "kaggle")
    (nifti,) = readers.find_cases(folders[("R", "A", "S")])
    assert kaggle.name == nifti.name == patient and not kaggle.flair_only
    from_kaggle, from_nifti = kaggle.load(), nifti.load()
    assert np.array_equal(from_kaggle.images, images) and np.array_equal(from_nifti.images, images)
    assert np.array_equal(from_kaggle.truth, masks)  # Kaggle's native grid is its slices
    assert np.array_equal(from_nifti.geometry.in_model_axes(from_nifti.truth), masks)  # the phantom is 256 px a side
    assert from_kaggle.geometry.slice_spacing() is None and from_nifti.geometry.slice_spacing() is not None
    alone = readers.FlairAlone(kaggle).load()
    assert alone.sequences == ("0001",) and (alone.images == images[..., 1:2]).all()


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    """One phantom in Kaggle's layout and as NIfTI cases in each orientation."""
    root = tmp_path_factory.mktemp("phantoms")
    patient = synthetic.write_patients(root / "kaggle", 1, seed=5, slices=(6, 7))[0]
    folders = {}
    for axcodes in ORIENTATIONS:
        folder = root / "".join(axcodes)
        assert synthetic.write_nifti_cases(folder, 1, seed=5, axcodes=axcodes, spacing=SPACING, slices=(6, 7)) == [patient]
        folders[axcodes] = folder
    return root, patient, folders


@pytest.mark.parametrize("axcodes", ORIENTATIONS)
def test_a_nifti_case_gives_kaggles_slices_whatever_its_orientation(phantoms, axcodes):
    root, patient, folders = phantoms
    images, masks = _kaggle_slices(root / "kaggle", patient)
    (case,) = readers.find_cases(folders[axcodes])
    assert case.name == patient and case.truth is not None
    scan = case.load()
    assert nib.aff2axcodes(scan.geometry.reference.affine) == axcodes
    assert np.array_equal(scan.images, images)  # voxel for voxel, after reorientation
    assert scan.geometry.slice_spacing() == pytest.approx(SPACING, abs=1e-5)
    assert np.array_equal(scan.geometry.to_native(masks.astype(np.float32)) > 0.5, scan.truth)  # and back again
    size = tumor_measures(scan.geometry.in_model_axes(scan.truth).transpose(1, 2, 0), scan.geometry.slice_spacing())
    assert size["volume_ml"] == pytest.approx(masks.sum() * np.prod(SPACING) / 1000, rel=1e-6)  # the phantom's
    assert size["tumor_slices"] == int(masks.any(axis=(1, 2)).sum())


def test_flair_alone_is_copied_into_the_missing_sequences(phantoms, tmp_path):
    root, patient, folders = phantoms
    flair = folders[("R", "A", "S")] / f"{patient}_0001.nii.gz"
    alone = tmp_path / "scan.nii.gz"
    alone.write_bytes(flair.read_bytes())
    (case,) = readers.find_cases(alone)
    scan = case.load()
    assert case.name == "scan" and scan.sequences == ("0001",)
    assert np.array_equal(scan.images[..., 0], scan.images[..., 1])
    assert np.array_equal(scan.images[..., 2], scan.images[..., 1])


def test_tumor_size_in_ml_slices_and_mm():
    mask = np.zeros((40, 40, 6), bool)
    mask[10:20, 5:25, 2:5] = True  # 10 x 20 pixels on 3 slices
    size = tumor_measures(mask, SPACING)
    assert size["volume_ml"] == pytest.approx(600 * 0.9 * 0.9 * 5.0 / 1000)
    assert size["tumor_slices"] == 3
    assert size["max_axial_diameter_mm"] == pytest.approx(0.9 * np.hypot(9, 19), rel=1e-5)
    shifted = np.roll(mask, 2, axis=2)  # one slice further: 5 mm, while 2 pixels would be 1.8 mm
    assert hd95_mm(mask, shifted, SPACING) == pytest.approx(5.0 * 2, abs=1e-6)
    assert np.isnan(hd95_mm(mask, np.zeros_like(mask), SPACING))
    unknown = tumor_measures(mask, None)  # an input without voxel sizes (Kaggle's slices): slices only
    assert unknown["tumor_slices"] == 3
    assert np.isnan(unknown["volume_ml"]) and np.isnan(unknown["max_axial_diameter_mm"])
    assert np.isnan(hd95_mm(mask, shifted, None))


@pytest.fixture(scope="module")
def flair_model(tmp_path_factory):
    """A stand-in U-Net that calls the brightest FLAIR tumor, with train.py's config.json beside it."""
    import keras

    from brainmri_tfds.settings import DataSettings
    from tuning.runfolder import RunConfig

    folder = tmp_path_factory.mktemp("model")
    model = keras.Sequential([keras.Input((64, 64, 1), name="image"),
                              keras.layers.Conv2D(1, 1, activation="sigmoid", name="mask")])
    model.layers[-1].set_weights([np.full((1, 1, 1, 1), 80.0, np.float32), np.array([-76.0], np.float32)])
    model.save(folder / "model.keras")
    RunConfig(DataSettings("lgg_mri/synthetic", 64, "flair")).write(folder)
    return folder / "model.keras"


def test_evaluate_writes_masks_on_the_inputs_grid_the_same_in_every_orientation(phantoms, flair_model, tmp_path):
    root, patient, folders = phantoms
    kaggle = tmp_path / "kaggle"  # the same phantom in Kaggle's layout, without its masks
    for path in (root / "kaggle").rglob("*.tif"):
        if not path.name.endswith("_mask.tif"):
            target = kaggle / path.relative_to(root / "kaggle")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    assert evaluate.main(["--model", str(flair_model), "--input", str(kaggle), "--out", str(tmp_path / "k")]) == 0
    pngs = sorted((tmp_path / "k" / "predictions").glob("*_pred_mask.png"), key=lambda p: int(p.name.split("_")[-3]))
    expected = np.stack([cv2.imread(str(p), cv2.IMREAD_UNCHANGED) > 0 for p in pngs])
    assert expected.any()

    for axcodes, folder in folders.items():
        out = tmp_path / "".join(axcodes)
        assert evaluate.main(["--model", str(flair_model), "--input", str(folder), "--out", str(out)]) == 0
        written = nib.load(str(out / f"{patient}.nii.gz"))
        flair = nib.load(str(folder / f"{patient}_0001.nii.gz"))
        assert written.shape == flair.shape and np.array_equal(written.affine, flair.affine)
        assert written.get_data_dtype() == np.uint8 and set(np.unique(written.get_fdata())) <= {0, 1}
        scan = readers.find_cases(folder)[0].load()
        predicted = scan.geometry.in_model_axes(written.get_fdata() > 0)
        overlap = 2 * (predicted & expected).sum() / (predicted.sum() + expected.sum())
        assert overlap >= 0.99, axcodes

        report = json.loads((out / "report.json").read_text())
        case = report["cases"][patient]
        truth_ml = scan.truth.sum() * np.prod(SPACING) / 1000
        assert report["n_patients"] == 1 and case["dice"] == report["volume_dice_mean"] > 0.3
        assert case["hd95_mm"] > 0 and report["per_patient"][patient]["hd95_mm"] == case["hd95_mm"]
        assert abs(case["volume_ml"] - truth_ml) < 0.5 * truth_ml  # the stand-in finds most of the tumor
        rows = (out / "volumes.csv").read_text().splitlines()
        assert rows[0] == "case,model,volume_ml,tumor_slices,max_axial_diameter_mm,dice,hd95_mm"
        assert rows[1].startswith(f"{patient},{flair_model},{case['volume_ml']:.4f},{case['tumor_slices']},")
        assert cv2.imread(str(out / f"{patient}.png")) is not None


def _bad_case(tmp_path, problem, phantoms):
    root, patient, folders = phantoms
    source = folders[("R", "A", "S")]
    case = tmp_path / "in"
    case.mkdir()
    flair = nib.load(str(source / f"{patient}_0001.nii.gz"))
    if problem == "4D file":
        data = np.stack([flair.get_fdata()] * 2, axis=-1)
        nib.save(nib.Nifti1Image(data, flair.affine), str(case / "X_0001.nii.gz"))
        return case, "X_0001.nii.gz: a 4D image"
    if problem == "grids disagree":
        nib.save(flair, str(case / "X_0001.nii.gz"))
        shifted = flair.affine.copy()
        shifted[0, 3] += 10
        nib.save(nib.Nifti1Image(flair.get_fdata(), shifted), str(case / "X_0000.nii.gz"))
        return case, "X_0000.nii.gz: its grid"
    if problem == "no FLAIR":
        nib.save(flair, str(case / "X_0000.nii.gz"))
        return case, "case X has no FLAIR"
    if problem == "truncated":
        whole = (source / f"{patient}_0001.nii.gz").read_bytes()
        (case / "X_0001.nii.gz").write_bytes(whole[: len(whole) // 2])
        return case, "X_0001.nii.gz: not a readable NIfTI file"
    if problem == "not an image":
        (case / "X_0001.nii.gz").write_bytes(gzip.compress(b"hello, not a scan\n" * 50))
        return case, "X_0001.nii.gz: not a readable NIfTI file"
    raise AssertionError(problem)


@pytest.mark.parametrize("problem", ["4D file", "grids disagree", "no FLAIR", "truncated", "not an image"])
def test_a_bad_case_is_one_line_naming_the_file_and_writes_nothing(phantoms, flair_model, tmp_path, problem, capsys):
    case, message = _bad_case(tmp_path, problem, phantoms)
    good = phantoms[2][("R", "A", "S")]
    for path in good.iterdir():  # a good case first: it must not be written either
        (case / path.name).write_bytes(path.read_bytes())
    out = tmp_path / "out"
    capsys.readouterr()
    assert evaluate.main(["--model", str(flair_model), "--input", str(case), "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and message in error and len(error.splitlines()) == 1, error
    assert not out.exists()


def test_a_dicom_series_per_sequence_gives_kaggles_slices(phantoms, flair_model, tmp_path):
    root, patient, _ = phantoms
    images, _ = _kaggle_slices(root / "kaggle", patient)
    case = tmp_path / "dicom" / "case1"
    assert synthetic.write_dicom_case(case, seed=5, slices=(6, 7))[0] == patient
    for path in (case, case.parent):  # a case folder, or a folder of case folders
        (found,) = readers.find_cases(path)
        assert found.name == "case1" and sorted(found.sequences) == ["0000", "0001", "0002"]
        assert np.array_equal(found.load().images, images)
    out = tmp_path / "out"
    assert evaluate.main(["--model", str(flair_model), "--input", str(case.parent), "--out", str(out)]) == 0
    written, scan = nib.load(str(out / "case1.nii.gz")), readers.find_cases(case)[0].load()
    assert written.shape == (256, 256, 7) and np.allclose(written.affine, scan.geometry.reference.affine)
    assert written.header.get_zooms() == pytest.approx(SPACING) and nib.aff2axcodes(written.affine)[:2] == ("P", "L")

    alone = tmp_path / "flair_only"
    synthetic.write_dicom_case(alone, seed=5, sequences=("0001",), slices=(6, 7))
    scan = readers.find_cases(alone)[0].load()
    assert scan.sequences == ("0001",) and np.array_equal(scan.images[..., 1], images[..., 1])


def test_dicom_series_that_cannot_be_told_apart_are_refused(flair_model, tmp_path, capsys):
    case = tmp_path / "case"
    synthetic.write_dicom_case(case, seed=5, sequences=("0000", "0001"), slices=(3, 3),
                               descriptions={"0000": "AX series", "0001": "AX series"})
    assert evaluate.main(["--model", str(flair_model), "--input", str(case), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert f"{case}: 2 DICOM series" in error and "no way to tell" in error and len(error.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def _damage(raw: bytearray, kind: str) -> None:
    """One header field of an uncompressed little-endian NIfTI-1 file damaged (offsets: the NIfTI-1 standard)."""
    import struct

    if kind == "unknown datatype":
        struct.pack_into("<h", raw, 70, 999)
    elif kind == "dims far beyond the file":
        struct.pack_into("<3h", raw, 42, 20000, 20000, 30000)
    elif kind == "negative dim":
        struct.pack_into("<h", raw, 42, -5)
    elif kind == "dim[0] of 9":
        struct.pack_into("<h", raw, 40, 9)
    elif kind == "big-endian dims":
        dims = struct.unpack_from("<8h", raw, 40)
        struct.pack_into(">8h", raw, 40, *dims)
    elif kind == "negative vox_offset":
        struct.pack_into("<f", raw, 108, -100.0)
    elif kind in ("NaN sform", "singular sform"):
        struct.pack_into("<hh", raw, 252, 0, 1)  # qform unused, sform used
        value = float("nan") if kind == "NaN sform" else 0.0
        struct.pack_into("<12f", raw, 280, *([value] * 12))
    elif kind == "zero pixdim":
        struct.pack_into("<3f", raw, 80, 0.0, 0.0, 0.0)
    else:
        raise AssertionError(kind)


DAMAGED = {  # kind: what the one-line error says (None: still readable, a mask and a warning)
    "unknown datatype": "not a readable NIfTI file", "dims far beyond the file": "far more than a scan holds",
    "negative dim": "declares the shape", "dim[0] of 9": "not a readable NIfTI file",
    "big-endian dims": "not a readable NIfTI file", "negative vox_offset": "not a readable NIfTI file",
    "NaN sform": "not finite or not invertible", "singular sform": "not finite or not invertible",
    "zero pixdim": None,
}


@pytest.mark.parametrize("kind", DAMAGED)
def test_a_damaged_header_is_one_line_naming_the_file(phantoms, flair_model, tmp_path, capsys, kind):
    from tuning import predict

    root, patient, folders = phantoms
    raw = bytearray(gzip.decompress((folders[("R", "A", "S")] / f"{patient}_0001.nii.gz").read_bytes()))
    _damage(raw, kind)
    damaged = tmp_path / "in" / "scan.nii.gz"
    damaged.parent.mkdir()
    damaged.write_bytes(gzip.compress(bytes(raw)))
    out = tmp_path / "out"
    code = predict.main(["-i", str(damaged), "-o", str(out), "--model", str(flair_model)])
    captured = capsys.readouterr()
    if DAMAGED[kind] is None:  # the affine places the voxels: a mask on the input's grid, and a word on it
        assert code == 0 and "disagree with its affine's" in captured.out
        assert nib.load(str(out / "scan.nii.gz")).shape == nib.load(str(damaged)).shape
        return
    error = captured.err.strip()
    assert code == 2 and error.startswith(f"error: {damaged}: ") and DAMAGED[kind] in error, error
    assert len(error.splitlines()) == 1 and "Traceback" not in captured.err and not out.exists()
