"""Bad input to `tfds build`: one line naming the file, a non-zero exit, and no dataset left behind.

Each row of the README's "Bad input and interruptions" table that concerns the download is one
case here. The builder is driven as `tfds build` drives it, and afterwards nothing under data_dir
may look like a dataset to `tfds.load`, and nothing may be written outside data_dir.
"""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow_datasets as tfds

import brainmri_tfds  # noqa: F401  (registers lgg_mri)
from brainmri_tfds import LayoutError

ROOT = Path(__file__).resolve().parents[1]


def _truncated_tiff(root, patient, tmp_path, zip_folder):
    target = patient / f"{patient.name}_2.tif"
    target.write_bytes(target.read_bytes()[:500])
    return root, [target.name, "unreadable or truncated TIFF"]


def _image_without_mask(root, patient, tmp_path, zip_folder):
    (patient / f"{patient.name}_2_mask.tif").unlink()
    return root, [f"{patient.name}_2.tif", "without its mask"]


def _mask_without_image(root, patient, tmp_path, zip_folder):
    (patient / f"{patient.name}_3.tif").unlink()
    return root, [f"{patient.name}_3_mask.tif", "without its image"]


def _image_512(root, patient, tmp_path, zip_folder):
    target = patient / f"{patient.name}_1.tif"
    cv2.imwrite(str(target), np.zeros((512, 512, 3), np.uint8))
    return root, [target.name, "512x512x3", "expected 256x256x3"]


def _image_one_channel(root, patient, tmp_path, zip_folder):
    target = patient / f"{patient.name}_1.tif"
    cv2.imwrite(str(target), np.zeros((256, 256), np.uint8))
    return root, [target.name, "expected 256x256x3"]


def _mask_other_values(root, patient, tmp_path, zip_folder):
    target = patient / f"{patient.name}_1_mask.tif"
    resaved = np.zeros((256, 256), np.uint8)
    resaved[100:140, 100:140] = 254  # a mask re-saved with smoothing
    resaved[100:140, 140:150] = 255
    cv2.imwrite(str(target), resaved)
    return root, [target.name, "254", "besides 0 and 255"]


def _stray_file(root, patient, tmp_path, zip_folder):
    (patient / "notes.txt").write_text("stray")
    return root, ["notes.txt", "unexpected file"]


def _empty_manual_dir(root, patient, tmp_path, zip_folder):
    empty = tmp_path / "empty"
    empty.mkdir()
    return empty, [str(empty), "does not exist or is empty", "kaggle_3m/"]


def _foreign_zip(root, patient, tmp_path, zip_folder):
    holder = tmp_path / "holder"
    holder.mkdir()
    with zipfile.ZipFile(holder / "photos.zip", "w") as archive:
        archive.writestr("holiday/beach.jpg", b"jpeg")
    return holder, ["photos.zip", "no Kaggle LGG slices"]


def _corrupt_zip(root, patient, tmp_path, zip_folder):
    holder = tmp_path / "holder"
    holder.mkdir()
    archive = zip_folder(root, holder / "archive.zip")
    archive.write_bytes(archive.read_bytes()[:-4000])  # a download cut short
    return holder, ["archive.zip"]


def _two_zips(root, patient, tmp_path, zip_folder):
    holder = tmp_path / "holder"
    holder.mkdir()
    zip_folder(root, holder / "a.zip")
    (patient / f"{patient.name}_1_mask.tif").unlink()
    zip_folder(root, holder / "b.zip")
    return holder, ["a.zip", "b.zip", "2 zip files"]


def _zip_slip(root, patient, tmp_path, zip_folder):
    holder = tmp_path / "holder"
    holder.mkdir()
    archive = zip_folder(root, holder / "archive.zip")
    with zipfile.ZipFile(archive, "a") as z:
        z.writestr(f"kaggle_3m/../../escaped_{patient.name}.tif", b"payload")
    return holder, ["../../escaped_", "outside the archive"]


def _zip_bomb(root, patient, tmp_path, zip_folder):
    holder = tmp_path / "holder"
    holder.mkdir()
    bomb = f"kaggle_3m/{patient.name}/{patient.name}_1.tif"
    with zipfile.ZipFile(zip_folder(root, tmp_path / "clean.zip")) as clean, \
            zipfile.ZipFile(holder / "archive.zip", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for info in clean.infolist():
            if info.filename != bomb:
                archive.writestr(info, clean.read(info))
        archive.writestr(bomb, bytes(64 * 1024 * 1024))  # 64 MiB of zeros, about 64 KB compressed
    return holder, [f"{patient.name}_1.tif", "far beyond an MRI slice"]


ROWS = {
    "truncated TIFF": _truncated_tiff,
    "image without mask": _image_without_mask,
    "mask without image": _mask_without_image,
    "512x512 image": _image_512,
    "one-channel image": _image_one_channel,
    "mask not 0/255": _mask_other_values,
    "stray file": _stray_file,
    "empty manual dir": _empty_manual_dir,
    "zip not this dataset": _foreign_zip,
    "truncated zip": _corrupt_zip,
    "two zips": _two_zips,
    "zip member ../": _zip_slip,
    "zip bomb": _zip_bomb,
}


def _files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def _assert_no_dataset(data_dir: Path):
    assert not list(data_dir.rglob("dataset_info.json")), "a failed build must leave no dataset"
    with pytest.raises((tfds.core.DatasetNotFoundError, AssertionError), match="could not find data|not found"):
        tfds.load("lgg_mri", data_dir=str(data_dir), download=False)


@pytest.mark.parametrize("row", list(ROWS))
def test_bad_download_is_one_clear_error_and_no_dataset(row, tree, zip_folder, tmp_path):
    root, patient = tree
    manual_dir, expected = ROWS[row](root, patient, tmp_path, zip_folder)
    data_dir = tmp_path / "tfds"
    before = _files_under(tmp_path)

    builder = tfds.builder("lgg_mri", data_dir=str(data_dir))
    with pytest.raises(LayoutError) as caught:
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))

    message = str(caught.value)
    assert "\n" not in message
    for text in expected:
        assert text in message
    _assert_no_dataset(data_dir)
    written = {p for p in _files_under(tmp_path) - before if data_dir not in p.parents}
    assert not written, f"files written outside data_dir: {written}"


def test_tfds_build_prints_one_line_without_traceback(tree, tmp_path):
    root, patient = tree
    target = patient / f"{patient.name}_3_mask.tif"
    target.write_bytes(target.read_bytes()[:300])  # found only while examples are being written
    data_dir = tmp_path / "tfds"
    result = subprocess.run(
        ["tfds", "build", str(ROOT / "brainmri_tfds" / "lgg_mri"), "--manual_dir", str(root), "--data_dir", str(data_dir)],
        cwd=tmp_path, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("lgg_mri: error: ") and target.name in last and "truncated" in last
    _assert_no_dataset(data_dir)


def test_python_callers_still_get_the_exception():
    # The one-line rule is for the `tfds` command line only; importing the builder elsewhere
    # leaves Python's excepthook alone.
    code = "import sys, brainmri_tfds; print(sys.excepthook is sys.__excepthook__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.stdout.strip() == "True", result.stderr[-1000:]


def test_layout_error_is_found_through_wrapping():
    from brainmri_tfds.lgg_mri.lgg_mri_dataset_builder import _layout_error_in

    original = LayoutError("x.tif: unreadable or truncated TIFF")
    try:
        try:
            raise original
        except LayoutError as err:
            raise RuntimeError("beam stage failed") from err
    except RuntimeError as wrapped:
        assert _layout_error_in(wrapped) is original
    assert _layout_error_in(RuntimeError("other")) is None
