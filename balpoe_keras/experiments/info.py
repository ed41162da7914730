r"""Prints what this machine runs balpoe_keras with (for bug reports).

    python -m balpoe_keras.experiments.info
    KERAS_BACKEND=jax python -m balpoe_keras.experiments.info

One line each: versions, the Keras backend and its devices, whether
TensorFlow is installed and its oneDNN CPU kernels are on (the command-line
tools turn them on, `balpoe_keras.experiments.cli`), and whether the CPU
computes bfloat16 natively (`--mixed_precision=auto`).
"""

import importlib.metadata

from balpoe_keras.experiments import cli


def describe():
    """`[(name, value)]` of this machine's setup."""
    import keras

    import balpoe_keras
    from balpoe_keras.tensorflow_check import is_tensorflow_installed
    from balpoe_keras.training import compiling

    backend = keras.backend.backend()
    rows = [("balpoe_keras", balpoe_keras.__version__),
            ("keras", keras.__version__), ("backend", backend)]
    for package in ("tensorflow", "jax", "torch"):
        try:
            rows.append((package, importlib.metadata.version(package)))
        except importlib.metadata.PackageNotFoundError:
            rows.append((package, "not installed"))
    rows.append(("devices", ", ".join(_devices(backend))))
    if backend == "tensorflow" and is_tensorflow_installed():
        from tensorflow.python.util import _pywrap_util_port as port

        rows.append(("oneDNN", "on" if port.IsMklEnabled() else "off"))
    rows.append(("CPU bfloat16", "native" if compiling.cpu_has_bfloat16()
                 else "emulated"))
    return rows


def _devices(backend):
    if backend == "torch":  # Keras 3.15 lists no devices on torch.
        import torch

        count = torch.cuda.device_count()
        return [f"cuda:{i}" for i in range(count)] or ["cpu"]
    from keras import distribution

    return distribution.list_devices()


def main():
    cli.load_keras()
    for name, value in describe():
        print(f"{name}: {value}")


if __name__ == "__main__":
    cli.start()
    main()
