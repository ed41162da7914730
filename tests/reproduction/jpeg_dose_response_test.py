"""reproduction/jpeg_dose_response.py: re-encoding, plan and table."""

import json
import os
import shutil
import tarfile
from unittest import mock

from tests.benchmark_modules import REPRODUCTION_DIR
from tests.benchmark_modules import load_script
from tests.cifar_archive import write_cifar_archive
from tests.test_case import TestCase

dose = load_script(REPRODUCTION_DIR, "jpeg_dose_response")


def _args(tmp, **kw):
    values = dict(data_dir=os.path.join(tmp, "data"), qualities="75,50,30",
                  seeds="1,2", epochs=20, cache_dir=os.path.join(tmp, "cache"),
                  workdir=os.path.join(tmp, "runs"))
    values.update(kw)
    return type("Args", (), values)()


class JpegDoseResponseTest(TestCase):
    def test_reencoding_keeps_names_and_subsampling_and_loses_more(self):
        tmp = self.get_temp_dir()
        os.makedirs(os.path.join(tmp, "data"))
        shipped = write_cifar_archive(os.path.join(tmp, "data"), 3, 2)
        found = dose.archives(_args(tmp))
        self.assertEqual(found[75], (os.path.join(tmp, "data"), None))
        # Lower quality, more loss: PSNR(q50) > PSNR(q30), both finite.
        self.assertGreater(found[50][1], found[30][1])
        self.assertGreater(found[30][1], 10.0)
        archive = os.path.join(found[30][0], "cifar10-jpeg.tar.gz")
        with tarfile.open(shipped) as a, tarfile.open(archive) as b:
            self.assertEqual(a.getnames(), b.getnames())
        self.assertEqual(dose.source_subsampling(archive),
                         dose.source_subsampling(shipped))
        # A second call reuses the cache.
        mtime = os.path.getmtime(archive)
        dose.archives(_args(tmp))
        self.assertEqual(os.path.getmtime(archive), mtime)
        # Another source archive is re-encoded, not served the old cache.
        other = os.path.join(tmp, "other")
        shutil.copytree(os.path.join(tmp, "data"), other)
        dose.archives(_args(tmp, data_dir=other))
        with open(archive + ".json") as f:
            self.assertEqual(json.load(f)["source"],
                             os.path.join(other, "cifar10-jpeg.tar.gz"))

    def test_plan_table_and_slope(self):
        tmp = self.get_temp_dir()
        args = _args(tmp)
        found = {75: ("/d75", None), 50: ("/d50", 38.0), 30: ("/d30", 33.0)}
        plan = dose.commands(args, found)
        self.assertEqual([(q, s) for q, s, _, _ in plan],
                         [(75, 1), (75, 2), (50, 1), (50, 2), (30, 1),
                          (30, 2)])
        argv = plan[4][3]
        self.assertIn("--data_dir=/d30", argv)
        self.assertIn("--input_pipeline=tfdata", argv)
        self.assertIn("--mixup_alpha=0.8", argv)
        # Reports of q75 (60, 62; ECE 9, 11) and q30 (51 only; ECE 12).
        for (quality, seed, report, _), (acc, ece) in zip(
                [plan[0], plan[1], plan[4]], [(60, 9), (62, 11), (51, 12)]):
            os.makedirs(os.path.dirname(report))
            with open(report, "w") as f:
                json.dump({"summary": {  # Fractions, as in the reports.
                    "test/balanced_accuracy": acc / 100,
                    "test/ece": ece / 100}}, f)
        results = dose.collect(args, found)
        self.assertEqual(sorted(results), [30, 75])
        # Means 61 at q75 and 51 at q30: (51 - 61) / (30 - 75) * 10.
        self.assertAlmostEqual(dose.slope(results, "balanced_accuracy"),
                               10 / 45 * 10, places=6)
        table = dose.format_table(results, found)
        self.assertIn("| 75 (as shipped) | – | 1,2 | 61.00 [60.00, 62.00]"
                      " | 10.00 [9.00, 11.00] |", table)
        self.assertIn("| 30 | 33.0 | 1 | 51.00 | 12.00 |", table)
        self.assertIn("Slope of the balanced accuracy: +2.22 points", table)
        self.assertIn("different seeds (75: 1,2; 30: 1)", table)

    def test_table_only_needs_no_archive(self):
        # It read (and re-encoded where uncached) the archive first, so
        # making the table needed the data and could take minutes.
        tmp = self.get_temp_dir()
        args = _args(tmp)
        folder = os.path.join(args.cache_dir, "q50")
        os.makedirs(folder)
        with open(os.path.join(folder, "cifar10-jpeg.tar.gz.json"), "w") as f:
            json.dump({"psnr": 38.0}, f)
        found = dose.cached_archives(args)
        self.assertEqual(found[50], (folder, 38.0))
        self.assertIsNone(found[30][1])  # No cache: PSNR unknown.
        with mock.patch.object(dose, "reencode") as reencode, \
                mock.patch.object(dose, "find_cifar10_archive") as find:
            dose.main([f"--cache_dir={args.cache_dir}", "--table_only",
                       f"--workdir={os.path.join(tmp, 'runs')}"])
        reencode.assert_not_called()
        find.assert_not_called()
