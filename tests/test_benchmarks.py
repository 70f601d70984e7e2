"""The benchmarks and the one-off analyses run and print their figures (tiny sizes here). All of
them are marked `benchmark`: never part of the default run (`python -m pytest -m benchmark`)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.benchmark


def _script(path: str):
    """A benchmark script loaded from its file; an analysis as the module it runs as
    (`python -m benchmarks.analyses.<name>`, from the checkout)."""
    import importlib
    import importlib.util

    if path.startswith("benchmarks/analyses/"):
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        return importlib.import_module("benchmarks.analyses." + Path(path).stem)
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _script_main(path: str):
    """The main() of a script that is not a module."""
    return _script(path).main


# a fresh process (TensorFlow's kernels are chosen as it loads)
def test_speed_benchmark_prints_every_figure(synthetic_data_dir):
    command = [sys.executable, str(ROOT / "benchmarks" / "speed.py"), "--depth", "2", "--base-filters", "4",
               "--image-size", "32", "--channels", "1", "--batch-size", "4", "--steps", "2", "--warmup", "1",
               "--data-dir", synthetic_data_dir]
    result = subprocess.run(command, cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("train_images_per_s", "train_images_per_s_pipeline", "predict_images_per_s", "peak_rss_mb",
                "train_gflop_per_s", "predict_gflop_per_s", "fp32_peak_gflop_per_s", "matmul_gflop_per_s"):
        assert figures[key] > 0
    assert figures["precision"] in ("float32", "mixed_bfloat16")
    assert figures["batch_norm"] in ("fused", "parts") and isinstance(figures["onednn_below_avx512"], bool)


def test_as_avx2_runs_a_command_with_every_kernel_library_capped_at_avx2():
    script = str(ROOT / "benchmarks" / "as_avx2.sh")
    code = ("import os; from brainmri_tfds.runtime import onednn_below_avx512; "
            "print(os.environ['ONEDNN_MAX_CPU_ISA'], os.environ['ATEN_CPU_CAPABILITY'], onednn_below_avx512())")
    result = subprocess.run(["bash", script, sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and result.stdout.split()[-3:] == ["AVX2", "avx2", "True"], result.stderr[-2000:]
    usage = subprocess.run(["bash", script], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "benchmarks/speed.py" in usage.stdout


def test_flops_are_counted_from_the_architecture_and_the_peak_from_the_cpu():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from unet_flops import forward_flops, fp32_peak_gflops
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    # depth 1, 1 filter, 4x4, 1 channel: encoder 3x3 1->1, 1->1 at 4x4; bottleneck 1->2, 2->2 at 2x2;
    # up 2->1 (one tap per output pixel) at 4x4; decoder 2->1, 1->1 at 4x4; head 1->1
    expected = 2 * (16 * 9 * 2 + 4 * 9 * (2 + 4) + 16 * 2 + 16 * 9 * (2 + 1) + 16)
    assert forward_flops(1, 1, 4, 1) == expected
    assert forward_flops(4, 32, 256, 3) > 15 * forward_flops(4, 16, 128, 1)  # 4x the pixels, about 4x the width^2
    avx2 = "flags\t: sse avx2 fma\ncpu MHz\t: 2500.0\n"
    assert fp32_peak_gflops(avx2, cores=2)[0] == 2 * 32 * 2.5
    assert fp32_peak_gflops(avx2.replace("avx2", "avx2 avx512f"), cores=2)[0] == 2 * 64 * 2.5


def test_conv_kernels_times_the_unets_own_convolutions(capsys, monkeypatch):
    from tuning.unet import build_unet

    script = _script("benchmarks/analyses/conv_kernels.py")
    monkeypatch.setattr(script, "matmul_gflops", lambda: 100.0)  # seconds of arithmetic the test needs not
    model = build_unet(32, 3, depth=2, base_filters=4)
    convolutions = [(layer.name, layer.input.shape[1], *layer.kernel.shape[2:]) for layer in model.layers
                    if layer.name.endswith(("_conv1", "_conv2"))]
    assert sorted(script.conv_shapes(2, 4, 32, 3)) == sorted(convolutions)
    assert script.main(["--depth", "1", "--base-filters", "4", "--image-size", "16", "--repeats", "1",
                        "--alternatives"]) == 0  # which checks each alternative against TensorFlow's own kernel
    out = capsys.readouterr().out
    assert "dec0_conv1" in out and all(f"  {kernel}" in out for kernel in (*script.KERNELS, *script.ALTERNATIVES))


def test_batch_norm_kernels_times_both_implementations_for_every_batch_norm(capsys):
    script = _script("benchmarks/analyses/batch_norm_kernels.py")
    assert script.main(["--depth", "1", "--base-filters", "4", "--image-size", "16", "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[2:]] == ["enc0_bn1", "enc0_bn2", "bottleneck_bn1", "bottleneck_bn2",
                                                       "dec0_bn1", "dec0_bn2", "all"]
    assert all(float(figure) > 0 for figure in lines[-1].split()[1:]) and len(lines[-1].split()) == 5


@pytest.mark.parametrize("predict", [False, True])
def test_step_profile_ranks_the_ops_of_a_step(capsys, predict):
    script = _script("benchmarks/analyses/step_profile.py")
    assert script.main(["--depth", "1", "--base-filters", "4", "--image-size", "16", "--steps", "1"]
                       + (["--predict"] if predict else [])) == 0
    out = capsys.readouterr().out
    # weight gradients only in training (prediction's transposed convolutions are input gradients)
    assert "wall time" in out and "Conv2D" in out and ("Conv2DBackpropFilter" in out) is not predict


def test_prediction_streams_times_each_variant_every_round(capsys):
    main = _script_main("benchmarks/analyses/prediction_streams.py")
    assert main(["--depth", "1", "--base-filters", "4", "--image-size", "16", "--batch-size", "3",
                 "--streams", "1", "2", "--rounds", "2", "--steps", "1", "--precision", "float32"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines[1:]] == ["round 1", "round 2", "1 streams", "2 streams"]
    assert "(1.00x)" in lines[-2] and float(lines[-1].split()[3]) > 0


@pytest.mark.parametrize("script, argv, message", [
    ("prediction_streams.py", ["--streams", "1", "0"], "--streams must be at least 1"),
    ("step_profile.py", ["--top", "0"], "--steps and --top must be at least 1"),
    ("batch_norm_kernels.py", ["--depth", "3", "--image-size", "20"], "multiple of 2**depth = 8"),
])
def test_the_analyses_refuse_shapes_they_cannot_build(capsys, script, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        _script_main(f"benchmarks/analyses/{script}")(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_brain_boxes_gives_the_side_of_each_patients_square(synthetic_data_dir, capsys):
    main = _script_main("benchmarks/analyses/brain_boxes.py")
    assert main(["--data-dir", synthetic_data_dir, "--config", "synthetic"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("20 patients: side of the brain square") and "smallest: " in out


def test_resolution_ceiling_is_perfect_at_native_size_and_lower_below(synthetic_data_dir, capsys):
    main = _script_main("benchmarks/analyses/resolution_ceiling.py")

    def ceiling(size: int) -> float:
        assert main(["--data-dir", synthetic_data_dir, "--config", "synthetic", "--image-size", str(size)]) == 0
        return float(capsys.readouterr().out.strip().splitlines()[-1].split("mean ")[1].split(",")[0])

    assert ceiling(256) == 1.0
    assert 0.5 < ceiling(32) < ceiling(128) < 1.0
    assert main(["--data-dir", synthetic_data_dir, "--config", "synthetic", "--image-size", "256"]) == 0
    counts = capsys.readouterr().out.strip().splitlines()[-2]
    total, tumor = int(counts.split()[0].replace(",", "")), int(counts.split(", ")[1].split()[0].replace(",", ""))
    assert " slices of 20 patients, " in counts and 0 < tumor < total


def test_intensity_spread_names_the_dimmest_and_brightest_patients(synthetic_data_dir, capsys):
    main = _script_main("benchmarks/analyses/intensity_spread.py")

    assert main(["--data-dir", synthetic_data_dir, "--config", "synthetic"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("20 patients") and len(lines) == 4
    for line in lines[1:]:
        low, high = float(line.split("(")[0].split()[-1]), float(line.split("..")[1].split("(")[0])
        assert 1 <= low <= high <= 255


# 40 s of search and training
def test_budget_times_search_and_training_on_phantoms(tmp_path, capsys):
    out = tmp_path / "budget"
    command = [sys.executable, str(ROOT / "benchmarks" / "budget.py"), "--out", str(out), "--patients", "6",
               "--slices", "3", "4", "--search-args", "--tuner random --max-trials 1 --max-epochs 1 --image-size 32",
               "--train-args", "--epochs 1"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    written = len(list((out / "phantoms" / "kaggle_3m").rglob("*_mask.tif")))
    assert sum(summary["slices"].values()) == written
    assert summary["search_and_training_slices"] == summary["slices"]["train"] + summary["slices"]["validation"]
    assert summary["search_seconds"] > 0 and summary["train_seconds"] > 0
    assert summary["resumed"] == {"search": False, "train": False}
    assert summary["best_hyperparameters"]["depth"] in (2, 3, 4, 5)

    budget = _script_main("benchmarks/budget.py")  # the reruns start nothing: in this process
    assert budget(command[2:]) == 0 and "already measured" in capsys.readouterr().out

    (out / "summary.json").unlink()  # as if stopped after both steps: their measured seconds are kept
    assert budget(command[2:]) == 0
    assert "$ " not in capsys.readouterr().out  # no step ran again
    assert json.loads((out / "summary.json").read_text())["search_seconds"] == summary["search_seconds"]


def test_budget_says_when_the_manual_dir_is_missing(tmp_path):
    command = [sys.executable, str(ROOT / "benchmarks" / "budget.py"), "--out", str(tmp_path / "budget"),
               "--manual-dir", str(tmp_path / "no-such-download")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "no-such-download is not a folder" in result.stderr


def test_litert_weights_prints_each_storage_smaller_than_float32(capsys):
    assert _script_main("benchmarks/litert_weights.py")(["--repeats", "1"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    by_storage = {line["storage"]: line for line in lines}
    assert list(by_storage) == ["float32", "float16", "int8"]
    assert by_storage["float32"]["max_probability_difference"] == 0.0
    assert by_storage["int8"]["megabytes"] < by_storage["float16"]["megabytes"] < by_storage["float32"]["megabytes"]
