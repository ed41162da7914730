"""The models' initial weights under a fixed seed are frozen.

`initial_weights.json` holds, per backend and model, a fingerprint of every
weight of the ResNet-32, ResNet-50 and ResNeXt-50 BalPoE models built right
after `keras.utils.set_random_seed`: its path and shape, its first three
values, its sum and its sum of squares, in `model.weights` order. Any change
to which layers are built, their order, their names or their initializers
moves these numbers (a weight drawn from another seed differs in every
value), so a refactor that keeps them keeps the initial weights, and with
them the trained results, of every run.

The fixture was written by the code of commit 2b0c07c (the flat builders
`build_balpoe_resnet32` etc., before `BalPoEClassifier`). The
`BalPoEClassifier` the runner trains (`build_balpoe_classifier`, the trunk
nested as one layer) must start from the same weights, in the same order,
under the same paths. Regenerate the fixture only from code whose initial
weights are the reference: `python -m tests.models.initial_weights_test`
with `KERAS_BACKEND` set, once per backend.
"""

import json
import os
import sys

import keras
import numpy as np
import pytest

from tests.test_case import TestCase

SEED = 1337
FIXTURE = os.path.join(os.path.dirname(__file__), "initial_weights.json")
ONE_BLOCK = (1, 1, 1, 1)
# name -> (architecture, kwargs, large); tiny but covering every path:
# cosine and linear heads, per-expert branches, one shared trunk ("linear
# experts", one pooled feature for all experts), separate stems. The
# classifier gets `num_classes` counts and `num_experts` spread lambdas.
CONFIGS = {
    "resnet32_cosine": ("resnet32", dict(
        num_classes=4, num_experts=3, blocks_per_stage=1), False),
    "resnet32_linear_all_shared": ("resnet32", dict(
        num_classes=4, num_experts=2, blocks_per_stage=1, shared_stages=3,
        head="linear"), False),
    "resnet32_no_shared_stem": ("resnet32", dict(
        num_classes=3, num_experts=2, blocks_per_stage=1, shared_stages=0,
        input_shape=(16, 16, 1), pixel_mean=(0.5,), pixel_std=(0.25,)),
        False),
    "resnet50_cosine": ("resnet50", dict(
        num_classes=4, num_experts=2, blocks_per_stage=ONE_BLOCK,
        shared_stages=3, input_shape=(32, 32, 3)), True),
    "resnext50_linear": ("resnext50", dict(
        num_classes=4, num_experts=2, blocks_per_stage=ONE_BLOCK,
        head="linear", input_shape=(32, 32, 3)), True),
}


def build_classifier(name):
    """`build_balpoe_classifier` with the settings of `CONFIGS[name]`."""
    from balpoe_keras import class_prior
    from balpoe_keras import models

    architecture, kwargs, _ = CONFIGS[name]
    kwargs = dict(kwargs)
    num_classes = kwargs.pop("num_classes")
    lambdas = class_prior.spread_lambdas(kwargs.pop("num_experts"))
    counts = [2 ** (num_classes - c) for c in range(num_classes)]
    keras.utils.set_random_seed(SEED)
    return models.build_balpoe_classifier(architecture, counts, lambdas,
                                          **kwargs)


def fingerprint(model):
    """`[path, shape, v0, v1, v2, sum, sum of squares]` per weight, in
    `model.weights` order: the first three values and float64 sums of the
    float32 values, to 8 significant digits."""
    rows = []
    for weight in model.weights:
        value = np.asarray(keras.ops.convert_to_numpy(weight), np.float64)
        flat = value.ravel()
        numbers = [*flat[:3], flat.sum(), np.square(flat).sum()]
        rows.append([weight.path, list(value.shape),
                     *[float(f"{x:.8g}") for x in numbers]])
    return rows


def load_fixture():
    with open(FIXTURE) as f:
        return json.load(f)[keras.backend.backend()]


class InitialWeightsTest(TestCase):
    def assertSameFingerprint(self, actual, expected, name):
        self.assertEqual([r[:2] for r in actual], [r[:2] for r in expected],
                         f"{name}: weight paths, order or shapes changed")
        for got, want in zip(actual, expected):
            # Same draws up to float rounding of the sums; another seed or
            # initializer changes every value.
            np.testing.assert_allclose(
                got[2:], want[2:], rtol=1e-5, atol=1e-6,
                err_msg=f"{name}: {got[0]}")

    def check(self, name):
        _, _, large = CONFIGS[name]
        if large and keras.backend.backend() == "jax":
            self.skipTest("slow per-shape initializer compiles on JAX")
        expected = load_fixture()[name]
        classifier = build_classifier(name)
        self.assertEqual(type(classifier).__name__, "BalPoEClassifier")
        self.assertSameFingerprint(fingerprint(classifier), expected, name)

    def test_resnet32_cosine(self):
        self.check("resnet32_cosine")

    def test_resnet32_linear_all_shared(self):
        self.check("resnet32_linear_all_shared")

    def test_resnet32_no_shared_stem(self):
        self.check("resnet32_no_shared_stem")

    @pytest.mark.large
    def test_resnet50_cosine(self):
        self.check("resnet50_cosine")

    @pytest.mark.large
    def test_resnext50_linear(self):
        self.check("resnext50_linear")


def _write_fixture():
    """Adds this backend's fingerprints to the fixture file."""
    data = {}
    if os.path.exists(FIXTURE):
        with open(FIXTURE) as f:
            data = json.load(f)
    backend = keras.backend.backend()
    data[backend] = {
        name: fingerprint(build_classifier(name))
        for name, (_, _, large) in CONFIGS.items()
        if not (large and backend == "jax")
    }
    with open(FIXTURE, "w") as f:  # One weight a line.
        f.write(_format_fixture(data))
    print(f"{FIXTURE}: {backend}: {sorted(data[backend])}", file=sys.stderr)


def _format_fixture(data):
    blocks = []
    for backend in sorted(data):
        models = []
        for name in sorted(data[backend]):
            rows = ",\n".join(json.dumps(r) for r in data[backend][name])
            models.append(f"{json.dumps(name)}: [\n{rows}]")
        blocks.append(f"{json.dumps(backend)}: {{\n" + ",\n".join(models)
                      + "}")
    return "{\n" + ",\n".join(blocks) + "}\n"


if __name__ == "__main__":
    _write_fixture()
