"""Pytest setup: backend report, `large` / `tf_only` markers, a cache
folder of the test run."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # As the runner does.
if "BALPOE_KERAS_CACHE" not in os.environ:
    # The arrays decoded from the tests' generated archives and folders go
    # to a folder of this pytest process, removed at its end, not to the
    # user's ~/.cache/balpoe_keras (where each run would add new entries:
    # the cache key holds the data's modification time).
    _CACHE = tempfile.mkdtemp(prefix="balpoe_keras_test_cache_")
    os.environ["BALPOE_KERAS_CACHE"] = _CACHE
    atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)

try:
    # torchvision (the augmentation reference of the parity tests) pulls in
    # triton, whose extension crashes when loaded after TensorFlow: import
    # it before keras imports TensorFlow.
    import torchvision  # noqa: E402, F401
except ImportError:
    pass

import keras  # noqa: E402
import pytest  # noqa: E402


def pytest_addoption(parser):
    parser.addoption(
        "--run_large",
        action="store_true",
        default=False,
        help="Also run tests marked `large`.",
    )


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend: {keras.backend.backend()}"


def pytest_collection_modifyitems(config, items):
    run_large = config.getoption("--run_large")
    skip_large = pytest.mark.skip(reason="large test: pass --run_large")
    skip_tf = pytest.mark.skip(reason="tf_only test: backend is not TF")
    is_tf = keras.backend.backend() == "tensorflow"
    for item in items:
        if "large" in item.keywords and not run_large:
            item.add_marker(skip_large)
        if "tf_only" in item.keywords and not is_tf:
            item.add_marker(skip_tf)
