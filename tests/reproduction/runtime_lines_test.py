"""reproduction/runtime_lines.py: the flagfiles' runtime lines."""

import json
import os
import shutil

import keras
import pytest

from tests.benchmark_modules import REPRODUCTION_DIR
from tests.benchmark_modules import ROOT
from tests.benchmark_modules import load_script
from tests.test_case import TestCase

lines = load_script(REPRODUCTION_DIR, "runtime_lines")
EXPERIMENTS = os.path.join(ROOT, "experiments")


def _record(gpu_speed, cpu_speed):
    return [
        {"implementation": "balpoe_keras", "backend": "tensorflow",
         "median_images_per_sec": cpu_speed, "note": "2 CPU cores, alone"},
        {"implementation": "replica", "backend": "torch",
         "median_images_per_sec": 1.0, "note": "2 CPU cores, alone"},
        {"implementation": "balpoe_keras", "backend": "jax",
         "median_images_per_sec": gpu_speed, "note": "one H200"}]


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="no Keras computation; once (TensorFlow pass)")
class RuntimeLinesTest(TestCase):
    def test_training_images_are_the_published_set_sizes(self):
        # CIFAR-10-LT / CIFAR-100-LT sizes of the LDAM/BalPoE papers.
        for name, expected in [("cifar10_ir100_standard", 12406),
                               ("cifar10_folder_ir100_standard", 12406),
                               ("cifar100_ir100_standard", 10847),
                               ("cifar100_ir10_standard", 19573)]:
            values = lines.flag_values(
                os.path.join(EXPERIMENTS, f"{name}.flags"))
            self.assertEqual(lines.training_images(values), expected, name)

    def test_line_arithmetic(self):
        gpu, cpu = lines.measured_speeds(_record(6687.0, 76.6))
        line = lines.runtime_line(12406, 200, gpu, cpu)
        # 2,481,200 images: 371 s at 6,687/s; 32,392 s = 9.0 h at 76.6/s.
        self.assertEqual(
            line, "# Expected runtime: 200 epochs x 12,406 images = ~6 min "
            "on one H200 (JAX, 6,687 img/s), ~9.0 h on 2 CPU cores "
            "(TensorFlow, 76.6 img/s): reproduction/runtime_lines.py.")
        with self.assertRaisesRegex(ValueError, "gpu"):
            lines.measured_speeds(_record(6687.0, 76.6)[:2])
        # A stopped run and a run without a note (machine unknown) are not
        # counted: the next CPU run is.
        stopped = dict(_record(1.0, 50.0)[0], stopped=True)
        unnamed = {k: v for k, v in _record(1.0, 60.0)[0].items()
                   if k != "note"}
        _, cpu = lines.measured_speeds(
            [unnamed, stopped, *_record(6687.0, 76.6)])
        self.assertEqual(cpu["median_images_per_sec"], 76.6)

    def test_write_rewrites_only_measured_settings(self):
        tmp = self.get_temp_dir()
        for name in ("base_cifar.flags", "base_cifar_long.flags",
                     "cifar10_ir100_standard.flags", "cifar10_ir100_ce.flags",
                     "cifar10_ir100_long.flags",
                     "cifar100_ir100_7experts_long.flags",
                     "image_folder.flags", "quickstart.flags"):
            shutil.copy(os.path.join(EXPERIMENTS, name), tmp)
        record = os.path.join(tmp, "record.json")
        with open(record, "w") as f:
            json.dump(_record(1000.0, 100.0), f)
        before = {name: open(os.path.join(tmp, name)).read()
                  for name in os.listdir(tmp)}
        lines.main(["--record", record, "--experiments", tmp, "--write"])

        def runtime(name):
            with open(os.path.join(tmp, name)) as f:
                return [row.rstrip("\n") for row in f
                        if row.startswith(lines.PREFIX)]

        # 2,481,200 images: 41 min at 1,000/s, 6.9 h at 100/s.
        self.assertEqual(runtime("cifar10_ir100_standard.flags"), [
            "# Expected runtime: 200 epochs x 12,406 images = ~41 min on one"
            " H200 (JAX, 1,000 img/s), ~6.9 h on 2 CPU cores (TensorFlow, "
            "100.0 img/s): reproduction/runtime_lines.py."])
        self.assertTrue(runtime("cifar10_ir100_ce.flags")[0].startswith(
            "# Expected runtime (at most: measured with more experts): 200 "
            "epochs x 12,406 images = ~41 min"))
        # AutoAugment's input pipeline may not keep up with the GPU.
        self.assertEqual(runtime("cifar10_ir100_long.flags"), [
            "# Expected runtime: 400 epochs x 12,406 images = at least ~1.4 "
            "h on one H200 (JAX, 1,000 img/s), ~13.8 h on 2 CPU cores "
            "(TensorFlow, 100.0 img/s): reproduction/runtime_lines.py."])
        # More experts cost more per image: both figures lower bounds.
        # 4,338,800 images: 72 min at 1,000/s, 12.1 h at 100/s.
        self.assertEqual(runtime("cifar100_ir100_7experts_long.flags"), [
            "# Expected runtime (at least: measured with fewer experts): 400"
            " epochs x 10,847 images = at least ~1.2 h on one H200 (JAX, "
            "1,000 img/s), at least ~12.1 h on 2 CPU cores (TensorFlow, "
            "100.0 img/s): reproduction/runtime_lines.py."])
        for name in ("image_folder.flags", "quickstart.flags",
                     "base_cifar.flags", "record.json"):
            with open(os.path.join(tmp, name)) as f:
                self.assertEqual(f.read(), before[name], name)

    def test_committed_flagfiles_hold_the_committed_records_lines(self):
        with open(os.path.join(REPRODUCTION_DIR, "results",
                               "cifar10_lt_ir100_200ep.json")) as f:
            gpu, cpu = lines.measured_speeds(json.load(f))
        for path, line in lines.flagfile_lines(EXPERIMENTS, gpu,
                                               cpu).items():
            if not line.startswith("#"):
                continue
            with open(path) as f:
                self.assertIn(line + "\n", f.read(),
                              f"{path}: rerun `python reproduction/"
                              "runtime_lines.py --write`")
