"""Install balpoe_keras: `pip install -e ".[tf,test]"` (see README)."""

import pathlib

from setuptools import find_packages
from setuptools import setup

_HERE = pathlib.Path(__file__).parent
_VERSION = {}
_RUN = ["pillow>=10", "matplotlib>=3.8"]
exec((_HERE / "balpoe_keras" / "version.py").read_text(), _VERSION)

setup(
    name="balpoe_keras",
    version=_VERSION["__version__"],
    description=(
        "Balanced Product of Experts (BalPoE, CVPR 2023) for long-tailed "
        "recognition in Keras 3"
    ),
    license="Apache-2.0",
    long_description=(_HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["balpoe_keras", "balpoe_keras.*"]),
    python_requires=">=3.10",
    # The backend-agnostic core needs only these (it trains on JAX where
    # TensorFlow is not installed at all).
    install_requires=["keras>=3.15", "numpy>=1.26", "absl-py>=2.1"],
    extras_require={
        # Each training path reads the CIFAR-10 JPEG archive and image
        # folders with Pillow (the NumPy core of balpoe_keras.data) and
        # draws the report's reliability diagrams with matplotlib.
        # tf: tf.data pipelines, MirroredStrategy, SavedModel export, tfds
        # (4.9.10 needs importlib_resources but does not declare it) and
        # tensorboard for the training logs (TF 2.21 no longer pulls it).
        "tf": [
            "tensorflow>=2.21",
            "tensorflow-datasets>=4.9",
            "importlib_resources>=6",
            "tensorboard>=2.17",
            *_RUN,
        ],
        "jax": ["jax>=0.4.30", *_RUN],
        "torch": ["torch>=2.5", *_RUN],
        # torchvision is the reference of the augmentation parity tests
        # (the reference trains on its PIL transforms); scipy (via jax)
        # gives their KS tests; ruff checks the style (ruff.toml).
        "test": ["pytest>=8", "torchvision>=0.20", "scipy>=1.11",
                 "ruff>=0.6,<0.18"],
    },
)
