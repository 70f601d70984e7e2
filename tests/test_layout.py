"""Reading Kaggle's layout: order, the duplicated tree, zips, and every bad input named clearly."""

import zipfile

import cv2
import numpy as np
import pytest

from brainmri_tfds import layout, synthetic
from brainmri_tfds.splits import SPLIT_NAMES, split_of


def _error(path, **kwargs) -> str:
    with pytest.raises(layout.LayoutError) as caught:
        source = layout.open_source(path)
        list(layout.read_slices(source, layout.list_slices(source, **kwargs)))
    return str(caught.value)


def test_slices_are_ordered_numerically(tmp_path):
    root = tmp_path / "d"
    patient = synthetic.write_patients(root, 1, seed=0, slices=(12, 12))[0]
    slices = layout.list_slices(layout.open_source(root))
    assert [s.slice_index for s in slices] == list(range(1, 13))  # 2 before 10
    assert slices[1].key == f"{patient}_2"


def test_reads_image_and_mask(tree):
    root, _ = tree
    source = layout.open_source(root)
    item, image, mask = next(layout.read_slices(source, layout.list_slices(source)))
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    assert mask.shape == (256, 256, 1) and set(np.unique(mask)) <= {0, 1}
    # Channel order is kept (OpenCV's BGR is undone): the phantom's FLAIR is channel 1.
    stored = cv2.imread(str(root / item.image), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(image[..., 1], stored[..., 1])
    np.testing.assert_array_equal(image[..., 0], stored[..., 2])


@pytest.mark.parametrize("where", ["zip_in_folder", "zip_itself", "kaggle_3m_itself", "holder"])
def test_accepts_every_documented_manual_dir(tree, zip_folder, tmp_path, where):
    root, _ = tree
    expected = [s.key for s in layout.list_slices(layout.open_source(root))]
    if where == "zip_in_folder":
        holder = tmp_path / "zipdir"
        holder.mkdir()
        zip_folder(root, holder / "archive (1).zip")
        path = holder
    elif where == "zip_itself":
        path = zip_folder(root, tmp_path / "whatever.zip")
    elif where == "kaggle_3m_itself":
        path = root / "kaggle_3m"
    else:
        path = root
    assert [s.key for s in layout.list_slices(layout.open_source(path))] == expected


def test_duplicated_tree_is_read_once(tree, zip_folder, tmp_path):
    root, _ = tree
    single = layout.list_slices(layout.open_source(root))
    archive = zip_folder(root, tmp_path / "archive.zip", prefixes=("", "lgg-mri-segmentation/"))
    slices = layout.list_slices(layout.open_source(archive))
    assert [s.key for s in slices] == [s.key for s in single]
    assert all(s.image.startswith("kaggle_3m/") for s in slices)


def test_differing_duplicate_is_an_error(tree, zip_folder, tmp_path):
    root, patient = tree
    archive = tmp_path / "archive.zip"
    zip_folder(root, archive, prefixes=("", "lgg-mri-segmentation/"))
    with zipfile.ZipFile(archive, "a") as z:
        z.writestr(f"other/kaggle_3m/{patient.name}/{patient.name}_1.tif", b"different bytes")
    assert "two different copies" in _error(archive)


def test_numbers_of_patients_per_split_follow_the_quotas():
    ids = synthetic.patient_ids(20, seed=0)
    counts = {name: sum(split_of(p) == name for p in ids) for name in SPLIT_NAMES}
    assert counts == {"train": 16, "validation": 2, "test": 2}
    assert synthetic.patient_ids(20, seed=0) == ids  # deterministic


def test_split_depends_on_the_patient_alone():
    ids = synthetic.patient_ids(30, seed=5)
    forward = {p: split_of(p) for p in ids}
    backward = {p: split_of(p) for p in reversed(ids)}
    assert forward == backward
    assert split_of("TCGA_CS_4942_19970222") == split_of("TCGA_CS_4942_19970222")


def test_masks_optional_for_new_scans(tree):
    root, patient = tree
    for mask in root.rglob("*_mask.tif"):
        mask.unlink()
    slices = layout.list_slices(layout.open_source(root), masks_required=False)
    assert slices and all(s.mask is None for s in slices)
