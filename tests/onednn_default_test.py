"""`import balpoe_keras` turns TensorFlow's oneDNN kernels on (2x faster)."""

import os
import subprocess
import sys

import pytest

_PROBE = (
    "import balpoe_keras\n"
    "from tensorflow.python.util import _pywrap_util_port as port\n"
    "print('ONEDNN', port.IsMklEnabled())\n"
)


def _onednn_enabled(**env_updates):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env.update(env_updates, KERAS_BACKEND="tensorflow")
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split("ONEDNN")[-1].strip() == "True"


@pytest.mark.tf_only
def test_import_enables_onednn_before_tensorflow_loads():
    # Regression: the runner used to set the variable after `import keras`
    # had already loaded TensorFlow, so it trained without oneDNN.
    assert _onednn_enabled()


@pytest.mark.tf_only
def test_user_setting_wins():
    assert not _onednn_enabled(TF_ENABLE_ONEDNN_OPTS="0")
