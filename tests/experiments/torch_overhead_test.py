"""benchmarks/torch_overhead.py on the PyTorch backend (a tiny run)."""

import contextlib
import io

import keras

from tests.test_case import TestCase


class TorchOverheadTest(TestCase):
    def setUp(self):
        super().setUp()
        if keras.backend.backend() != "torch":
            self.skipTest("the script runs on the PyTorch backend")
        from tests.benchmark_modules import BENCHMARKS_DIR
        from tests.benchmark_modules import load_script

        self.script = load_script(BENCHMARKS_DIR, "torch_overhead")

    def test_times_both_models_and_counts_the_layers(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            median = self.script.main(["--batch", "1", "--repeats", "1",
                                       "--inner", "1"])
        self.assertCountEqual(median, ["keras infer", "reference infer",
                                       "keras train", "reference train"])
        self.assertTrue(all(t > 0 for t in median.values()))
        # ResNet-32 x 3 experts (2 shared stages): 71 convolutions.
        self.assertIn("269 Keras layers: 71 Conv2D, 71 BatchNorm, 71 ReLU",
                      out.getvalue())

    def test_explain_names_the_break_and_its_package_frame(self):
        import torch

        def forward():
            x = torch.ones(3) * 2
            print(end="")  # Not traceable: one graph break.
            return x + 1

        graphs, breaks, ops, reasons = self.script.explain(forward)
        self.assertEqual((graphs, breaks), (2, 1))
        self.assertEqual(ops, 3)  # ones and mul, then add.
        self.assertLen(reasons, 1)
        self.assertEqual(
            self.script._package_path("/x/site-packages/keras/src/a.py"),
            "keras/src/a.py")
        self.assertEqual(
            self.script._package_path("/repo/balpoe_keras/layers/b.py"),
            "balpoe_keras/layers/b.py")
        self.assertIsNone(self.script._package_path("/usr/lib/inspect.py"))
