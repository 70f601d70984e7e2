"""Shared fixtures: small synthetic datasets built once per test session."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


def _bfloat16_kernels_capped_away() -> bool:
    """Whether oneDNN is capped below the AVX-512 this CPU has (`benchmarks/as_avx2.sh`): TensorFlow reads
    the CPU and still picks oneDNN's bfloat16 kernels, which the cap removes, so bfloat16 cannot compute."""
    from brainmri_tfds import runtime

    return runtime.onednn_below_avx512() and "avx512f" in runtime.cpu_flags()


OPT_IN = ("benchmark", "scale")  # markers whose tests run only when `-m` names them


def pytest_collection_modifyitems(config, items):
    """Benchmarks and the scale-out tests never run unless `-m` names them (a `-m "not slow"` of
    its own would otherwise let them in).
    Tests marked `bfloat16` are skipped where oneDNN is capped below this CPU's AVX-512."""
    if _bfloat16_kernels_capped_away():
        skip = pytest.mark.skip(reason="bfloat16 cannot compute with oneDNN capped below this CPU's AVX-512")
        for item in items:
            if item.get_closest_marker("bfloat16") is not None:
                item.add_marker(skip)
    asked = config.getoption("markexpr") or ""
    left_out = [name for name in OPT_IN if name not in asked]
    kept = [item for item in items if not any(item.get_closest_marker(name) for name in left_out)]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory):
    """A TFDS data_dir holding the built `lgg_mri/synthetic` dataset, built once per test run: the
    parallel workers (pytest-xdist) share it, the first to ask building it while the others wait.
    Tests only read it."""
    import fcntl

    import tensorflow_datasets as tfds

    import brainmri_tfds  # noqa: F401

    run_folder = tmp_path_factory.getbasetemp()  # a worker's own folder sits in the run's folder
    if os.environ.get("PYTEST_XDIST_WORKER"):
        run_folder = run_folder.parent
    data_dir = run_folder / "tfds-synthetic"
    with open(run_folder / "tfds-synthetic.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (data_dir / "built").is_file():
            tfds.builder("lgg_mri/synthetic", data_dir=str(data_dir)).download_and_prepare()
            (data_dir / "built").touch()
    return str(data_dir)


@pytest.fixture
def tree(tmp_path):
    """A Kaggle-layout folder with 2 phantom patients of 3 slices; returns (root, first patient folder)."""
    from brainmri_tfds import synthetic

    root = tmp_path / "download"
    patients = synthetic.write_patients(root, 2, seed=3, slices=(3, 3))
    return root, root / "kaggle_3m" / patients[0]


def _zip_folder(folder, zip_path, prefixes=("",)):
    """Zips every file under `folder` once per prefix (Kaggle's archive holds its tree twice)."""
    import zipfile

    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                for prefix in prefixes:
                    archive.write(path, prefix + str(path.relative_to(folder)))
    return zip_path


@pytest.fixture
def zip_folder():
    """`zip_folder(folder, zip_path, prefixes=("",))` -> zip_path."""
    return _zip_folder


@pytest.fixture
def search_args(synthetic_data_dir, tmp_path):
    """`search_args(max_trials, max_epochs)` -> arguments of a tiny random search on the synthetic
    data, in tmp_path/p (32 px, FLAIR, batch 32, widths 4 and 8: these tests are about the search,
    not the model)."""

    def arguments(max_trials: int, max_epochs: int) -> list[str]:
        return [
            "--dataset", "lgg_mri/synthetic", "--data-dir", synthetic_data_dir, "--image-size", "32",
            "--channels", "flair", "--tuner", "random", "--max-trials", str(max_trials),
            "--max-epochs", str(max_epochs), "--batch-size", "32", "--base-filters", "4", "8",
            "--directory", str(tmp_path), "--project-name", "p",
        ]

    return arguments
