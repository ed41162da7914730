"""`import balpoe_keras` has no side effects (nor have building and
compiling a model on the caller's global state); the command-line tools
quiet TensorFlow's start-up and turn its oneDNN kernels on themselves."""

import os
import subprocess
import sys

import pytest

from balpoe_keras.experiments import cli

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_PROBE = """
import os, sys
import keras  # The backend's own import effects (JAX sets a TF variable).
env, fd2 = dict(os.environ), os.fstat(2)
import balpoe_keras
assert dict(os.environ) == env, set(os.environ.items()) ^ set(env.items())
now = os.fstat(2)
assert (now.st_dev, now.st_ino) == (fd2.st_dev, fd2.st_ino), "fd 2 moved"
assert keras.saving.get_registered_object("balpoe_keras>CosineHead")
assert keras.saving.get_registered_object("balpoe_keras>TorchSGD")
print("OK", balpoe_keras.BalPoELoss.__name__)
"""


# Import, build and compile change none of the caller's global state.
# (Keras' own unseeded initializers draw from Python's `random`: not ours.)
_STATE_PROBE = """
import keras, numpy as np
backend = keras.backend.backend()
if backend == "tensorflow":
    import tensorflow as tf
    tf_generator = tf.random.get_global_generator()
if backend == "torch":
    import torch

def state():
    numpy = np.random.get_state()
    found = {"dtype policy": keras.config.dtype_policy().name,
             "distribution": keras.distribution.distribution(),
             "NumPy RNG": (numpy[0], numpy[1].tobytes(), *numpy[2:])}
    if backend == "tensorflow":
        generator = tf.random.get_global_generator()
        found["tf.random global generator"] = (
            generator is tf_generator, generator.state.numpy().tobytes())
        found["tf.random global seed"] = tf.compat.v1.random.get_seed(None)
    if backend == "torch":
        found["torch RNG"] = torch.get_rng_state().numpy().tobytes()
        if torch.cuda.is_available():
            found["torch CUDA RNG"] = [
                s.numpy().tobytes() for s in torch.cuda.get_rng_state_all()]
    return found

before = state()
changed = {}
import balpoe_keras
changed["import"] = state()
model = balpoe_keras.build_balpoe_classifier(
    "resnet32", [50, 20, 5], blocks_per_stage=1)
changed["build"] = state()
model.compile()
changed["compile"] = state()
for step, after in changed.items():
    diff = sorted(k for k in before if before[k] != after[k])
    assert not diff, f"{step} changed {diff}"
print("OK", backend, sorted(before))
"""


def _run(args, **env_updates):
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_ENABLE_ONEDNN_OPTS", "TF_CPP_MIN_LOG_LEVEL")}
    env.update({"PYTHONPATH": _ROOT, **env_updates})
    return subprocess.run([sys.executable, *args], env=env, cwd=_ROOT,
                          capture_output=True, text=True, timeout=300)


def test_import_changes_no_environment_or_file_descriptor():
    out = _run(["-c", _PROBE])
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK BalPoELoss" in out.stdout


def test_import_build_compile_change_no_global_state():
    # dtype policy, distribution, NumPy's global RNG; torch's RNG on torch,
    # tf.random's global generator and seed on TensorFlow.
    out = _run(["-c", _STATE_PROBE])
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK" in out.stdout, out.stdout


def test_export_without_tensorflow_says_what_to_install():
    # It failed with a bare "No module named 'tensorflow'".
    out = _run(["-c", "import balpoe_keras.export"],
               BALPOE_KERAS_NO_TENSORFLOW="1", KERAS_BACKEND="jax")
    assert out.returncode == 1
    assert ("needs TensorFlow: pip install 'balpoe_keras[tf]'"
            in out.stderr), out.stderr[-2000:]


def test_tool_environment_defaults_and_user_settings():
    assert cli.tensorflow_environment({}) == {
        "TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    # The user's settings win; --verbosity keeps TensorFlow's C++ logging.
    assert cli.tensorflow_environment({"TF_ENABLE_ONEDNN_OPTS": "0"},
                                      verbose=True) == {}
    assert cli.verbose_requested(["run", "--verbosity=0"])
    assert not cli.verbose_requested(["run", "--verbosity=-1", "--x=1"])


@pytest.mark.tf_only
@pytest.mark.parametrize("user, enabled", [(None, True), ("0", False)])
def test_tools_turn_onednn_on_before_tensorflow_loads(user, enabled):
    # Regression: setting the variable after Keras had loaded TensorFlow
    # left oneDNN off (2x slower training on AVX2 CPUs).
    env = {"KERAS_BACKEND": "tensorflow"}
    if user is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = user
    out = _run(["-m", "balpoe_keras.experiments.info"], **env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"oneDNN: {'on' if enabled else 'off'}" in out.stdout, out.stdout
    # Quiet start-up: none of TensorFlow's C++ INFO lines.
    assert "I0000" not in out.stderr and "oneDNN custom" not in out.stderr, (
        out.stderr[-3000:])


_LOADED_AT_EXIT = """
import atexit, sys
atexit.register(lambda: print("loaded at exit:", sorted(
    {"keras", "tensorflow", "jax", "torch"} & set(sys.modules))))
"""


@pytest.mark.parametrize("tool, args", [
    ("run", ["--no_such_flag=1"]),
    ("run", ["--flagfile=experiments/quickstart.flags", "--epochs=0"]),
    ("evaluate", []),
    ("predict", ["image.jpg"]),
])
def test_tool_usage_errors_come_before_keras_loads(tool, args, tmp_path):
    # A mistyped flag is reported at once, not after the seconds Keras and
    # its backend take to import. (A `sitecustomize` prints the modules
    # loaded when the process exits.)
    (tmp_path / "sitecustomize.py").write_text(_LOADED_AT_EXIT)
    out = _run(["-m", f"balpoe_keras.experiments.{tool}", *args],
               PYTHONPATH=f"{tmp_path}{os.pathsep}{_ROOT}")
    assert out.returncode == 2, out.stderr[-3000:]
    assert "error: " in out.stderr, out.stderr[-3000:]
    assert "loaded at exit: []" in out.stdout, out.stdout
