"""`pip install -e ".[jax]"` in a fresh virtualenv (no TensorFlow) runs the
quickstart end to end on JAX and writes the report with its plots."""

import os
import subprocess
import sys

import keras
import pytest

from tests.cifar_archive import write_cifar_archive

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.large
@pytest.mark.skipif(keras.backend.backend() != "jax",
                    reason="builds its own virtualenv once, in the JAX pass")
def test_jax_extra_runs_the_quickstart_without_tensorflow(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", "-e", f"{ROOT}[jax]"],
        capture_output=True, text=True, timeout=1200)
    assert install.returncode == 0, install.stderr[-3000:]
    probe = subprocess.run(
        [python, "-c", "import importlib.util as u; print(u.find_spec("
         "'tensorflow') is None, u.find_spec('PIL') is not None, "
         "u.find_spec('matplotlib') is not None)"],
        capture_output=True, text=True, timeout=120)
    assert probe.stdout.split() == ["True", "True", "True"], probe
    write_cifar_archive(str(tmp_path), train_per_class=30, test_per_class=4)
    workdir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run(
        [python, "-m", "balpoe_keras.experiments.run",
         f"--flagfile={ROOT}/experiments/quickstart.flags",
         f"--data_dir={tmp_path}", f"--workdir={workdir}",
         # The model does not depend on TensorFlow: the smallest one.
         "--architecture=resnet8", "--epochs=1",
         "--warmup_epochs=1", "--lr_step_epochs=1",
         "--max_train_steps_per_epoch=2", "--imbalance_ratio=10",
         "--batch_size=16"],
        cwd=str(tmp_path), env=dict(env, KERAS_BACKEND="jax"),
        capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "input arrays" in run.stdout, run.stdout[-2000:]
    assert "export skipped: TensorFlow is not installed" in run.stdout
    report = workdir / "report"
    assert (report / "report.md").exists()
    assert list(report.glob("*.png")), sorted(os.listdir(report))
    assert (workdir / "model.keras").exists()
