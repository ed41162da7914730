"""The GPU scripts' tiny modes, end to end on the CPU.

`benchmarks/gpu_check.sh` and `reproduction/gpu_reproduce.sh` run with
TensorFlow blocked, on a synthetic CIFAR-10 archive.
"""

import os
import subprocess

import keras
import pytest

from tests.benchmark_modules import ROOT
from tests.cifar_archive import write_cifar_archive


@pytest.mark.skipif(keras.backend.backend() != "jax",
                    reason="runs the JAX script once (in the JAX pass)")
@pytest.mark.large
def test_gpu_check_tiny_mode_end_to_end(tmp_path):
    """`GPU_CHECK_TINY=1 bash benchmarks/gpu_check.sh`: the runner trains
    on JAX with TensorFlow blocked, on a synthetic archive."""
    write_cifar_archive(str(tmp_path), 20, 5)
    out = tmp_path / "out"
    env = dict(os.environ, GPU_CHECK_TINY="1", GPU_OUT=str(out),
               GPU_DATA=str(tmp_path),
               GPU_CHECK_WORKDIR=str(tmp_path / "work"),
               GPU_CHECK_TRAIN_ARGS="--imbalance_ratio=10")
    env.pop("KERAS_BACKEND", None)
    proc = subprocess.run(["bash", os.path.join(ROOT, "benchmarks",
                                                "gpu_check.sh")],
                          env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "tensorflow: not importable" in proc.stdout
    assert "input arrays" in proc.stdout
    for name in ("gpu_check.log", "train_log.csv", "report.md",
                 "report.json"):
        assert (out / name).exists(), name
    assert "test/balanced_accuracy" in (out / "report.json").read_text()


@pytest.mark.skipif(keras.backend.backend() != "jax",
                    reason="runs the JAX script once (in the JAX pass)")
@pytest.mark.large
def test_gpu_reproduce_tiny_mode_pairs_replica_and_runner(tmp_path):
    """`GPU_REPRO_TINY=1 bash reproduction/gpu_reproduce.sh` on the CPU: both
    paths train, the paired table lists both; a rerun skips them."""
    write_cifar_archive(str(tmp_path), 30, 10)
    out, runs = tmp_path / "out", tmp_path / "runs"
    env = dict(os.environ, GPU_REPRO_TINY="1", GPU_OUT=str(out),
               GPU_REPRO_DATA=str(tmp_path), GPU_REPRO_RUNS=str(runs),
               GPU_REPRO_REPLICA_SEEDS="1", GPU_REPRO_JAX_SEEDS="1")
    env.pop("KERAS_BACKEND", None)
    script = os.path.join(ROOT, "reproduction", "gpu_reproduce.sh")
    proc = subprocess.run(["bash", script], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    table = (out / "paired.md").read_text()
    assert "| balpoe_mixup | replica | 1 |" in table
    assert "| balpoe_mixup | arrays | 1 |" in table
    # Both paths' reliability diagrams, side by side.
    assert (out / "paired_reliability.png").stat().st_size > 10_000
    logs = sorted(runs.glob("*.log"))
    stamps = [log.stat().st_mtime_ns for log in logs]
    again = subprocess.run(["bash", script], env=env, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0
    # Finished runs are not started again (their logs are untouched).
    assert [log.stat().st_mtime_ns for log in logs] == stamps
