"""Whether TensorFlow is installed, without importing it.

TensorFlow is optional (`pip install balpoe_keras[tf]`): the tf.data
pipelines, TensorBoard logs and the SavedModel export need it; training on
JAX or PyTorch on the in-memory datasets does not. The check reads the
installed distributions (cheap, and a stand-in `tensorflow` package on the
path that is not an installed distribution does not count).
`BALPOE_KERAS_NO_TENSORFLOW=1` makes an installed TensorFlow count as
absent (benchmarks/gpu_env.sh uses it to try the TensorFlow-free setup
of a GPU machine on any machine).
"""

import functools
import importlib.metadata
import os

_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-gpu",
                  "tensorflow-macos", "tensorflow-intel", "tf-nightly")


@functools.lru_cache(maxsize=None)
def is_tensorflow_installed():
    """True if a TensorFlow distribution is installed (and not disowned by
    `BALPOE_KERAS_NO_TENSORFLOW=1`)."""
    if os.environ.get("BALPOE_KERAS_NO_TENSORFLOW") == "1":
        return False
    for name in _DISTRIBUTIONS:
        try:
            importlib.metadata.version(name)
            return True
        except importlib.metadata.PackageNotFoundError:
            continue
    return False
