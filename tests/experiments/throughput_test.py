"""benchmarks/throughput.py windows and the reference replica's size."""

import os

import pytest

from tests.benchmark_modules import BENCHMARKS_DIR
from tests.benchmark_modules import REPRODUCTION_DIR
from tests.benchmark_modules import load_script
from tests.test_case import TestCase

throughput = load_script(BENCHMARKS_DIR, "throughput")


class Args:
    batch_size, steps, repeats = 10, 2, 3


class WindowRatesTest(TestCase):
    def test_windows_skip_the_first_step_and_use_steady_steps(self):
        # Fake clock: step k of the timed call ends at clock[k]. The first
        # step (ending at 100.0) carries a one-off start cost and is only
        # the start of the first window.
        clock = iter([100.0, 101.0, 102.0, 106.0, 110.0, 110.5, 111.0])
        calls = []

        def run(n, on_step):
            calls.append(n)
            for _ in range(n):
                on_step()

        original = throughput.time.perf_counter
        throughput.time.perf_counter = lambda: next(clock)
        try:
            rates = throughput._window_rates(run, Args())
        finally:
            throughput.time.perf_counter = original
        # Warm-up 2 steps, then 2 * 3 + 1 timed steps.
        self.assertEqual(calls, [2, 7])
        # 20 images per window: 2 s, 8 s, 1 s.
        self.assertAllClose(rates, [10.0, 2.5, 20.0])


class MergeRoundsTest(TestCase):
    def _round(self, train, infer):
        return {"config": "c", "train_img_s_all": train,
                "infer_img_s_all": infer, "peak_rss_mib": 10.0}

    def test_medians_over_all_windows_and_a_skipped_round_is_named(self):
        rounds = [self._round([1.0, 5.0], [2.0]),
                  {"config": "c", "skipped": "timed out after 600 s"},
                  self._round([3.0], [4.0, 6.0])]
        merged = throughput.merge_rounds(rounds)
        self.assertEqual(merged["train_img_s"], 3.0)
        self.assertEqual(merged["infer_img_s"], 4.0)
        self.assertEqual(merged["rounds_done"], "2 of 3")
        self.assertEqual(merged["skipped_rounds"], ["timed out after 600 s"])
        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            throughput.print_table([merged], peak=100.0)
        self.assertIn("rounds used: 2 of 3", out.getvalue())
        self.assertIn("timed out after 600 s", out.getvalue())


class ReferenceReplicaTest(TestCase):
    def test_same_trainable_parameters_as_our_model(self):
        pytest.importorskip("torch")
        reference_torch = load_script(REPRODUCTION_DIR, "reference_torch")
        counts = [500 - 4 * c for c in range(100)]
        model, step = reference_torch.make_train_step(counts)
        params = sum(p.numel() for p in model.parameters())
        # docs/reference.md §1.5 / our build_balpoe_classifier("resnet32")
        # with 100 classes and 3 experts: 1,362,064.
        self.assertEqual(params, 1362064)
        import torch

        x = torch.rand(4, 3, 32, 32)
        y = torch.tensor([0, 1, 2, 99])
        loss = float(step(x, y))
        self.assertTrue(0.0 < loss < 50.0)


@pytest.mark.tf_only
class ImageFolderBenchmarkTest(TestCase):
    """benchmarks/input_pipeline.py --image_folders on tiny inputs."""

    def test_load_times_and_streaming_run(self):
        from tests.cifar_archive import write_cifar_archive

        bench = load_script(BENCHMARKS_DIR, "input_pipeline")
        data_dir = self.get_temp_dir()
        write_cifar_archive(data_dir, train_per_class=3, test_per_class=1)
        times = bench.load_times(data_dir, 1, self.get_temp_dir())
        self.assertEqual(sorted(times), sorted([
            "image folder, decoded", "archive, decoded",
            "image folder, cached", "archive, cached"]))
        self.assertTrue(all(len(v) == 1 and v[0] > 0
                            for v in times.values()))
        from balpoe_keras.data.image_folder import extract_archive

        root = extract_archive(os.path.join(data_dir, "cifar10-jpeg.tar.gz"),
                               self.get_temp_dir())
        self.assertEqual(bench.folder_equals_archive(data_dir, root, 3),
                         {"counts": True, "train": True, "test": True})
        folder = bench.write_large_jpegs(self.get_temp_dir(), 8)
        self.assertGreater(bench.streaming_rate(folder, 2, 4), 0)
