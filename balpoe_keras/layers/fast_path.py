"""The one dispatch from backend-agnostic code to a backend's fast path.

A fast path is a function `name` in the module `<package>.<backend>_fast_path`
(e.g. `balpoe_keras.layers.torch_fast_path.batch_norm`). It computes what
the generic keras.ops code beside its caller computes, in fewer or fused
kernels, or returns None where it does not apply (then the generic code
runs). A backend without such a module or function (JAX, whose XLA fuses
the generic ops itself) always runs the generic code. The modules import
their framework, so each loads only on its own backend.

The fast paths:

- `layers.tensorflow_fast_path.batch_norm`: TensorFlow's fused batch norm;
- `layers.torch_fast_path.batch_norm`: `torch.nn.functional.batch_norm`;
- `layers.torch_fast_path.conv2d`: channels-last conv without layout copies;
- `optimizers.torch_fast_path.sgd_update`: `TorchSGD` in `torch._foreach_*`.
"""

import importlib
import importlib.util

import keras

_FOUND = {}


def find(package, name):
    """The current backend's fast path `name` of `package`, or None."""
    key = (package, keras.backend.backend(), name)
    if key not in _FOUND:
        module = f"{package}.{key[1]}_fast_path"
        _FOUND[key] = (getattr(importlib.import_module(module), name, None)
                       if importlib.util.find_spec(module) else None)
    return _FOUND[key]


def run(package, name, *args):
    """`find(package, name)(*args)`, or None where there is no fast path
    or it does not apply (the caller then runs its generic code)."""
    function = find(package, name)
    return None if function is None else function(*args)
