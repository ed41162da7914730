import csv
import os

from balpoe_keras.training import workdir_lock
from balpoe_keras.training.run_folder import RunFolder
from tests.test_case import TestCase


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class RunFolderTest(TestCase):
    def test_log_grows_columns_and_truncates_uncommitted_epochs(self):
        folder = RunFolder(os.path.join(self.get_temp_dir(), "run"))
        folder.append_log(0, {"loss": 3.0})
        folder.append_log(1, {"loss": 2.0, "test/ece": 9.5})  # A new key.
        folder.append_log(2, {"loss": 1.0})
        rows = _rows(folder.log_path)
        self.assertEqual([r["epoch"] for r in rows], ["0", "1", "2"])
        self.assertEqual([r["test/ece"] for r in rows], ["NA", "9.5", "NA"])
        # Two epochs were committed: the row of epoch 2 (written just
        # before a crash) is dropped; from 0 the log is removed.
        folder.truncate_log(2)
        self.assertEqual([r["epoch"] for r in _rows(folder.log_path)],
                         ["0", "1"])
        folder.truncate_log(0)
        self.assertFalse(os.path.exists(folder.log_path))

    def test_a_reader_writes_nothing_and_takes_no_lock(self):
        path = os.path.join(self.get_temp_dir(), "run")
        reader = RunFolder(path, writer=False)
        reader.append_log(0, {"loss": 1.0})
        reader.write_text("config.json", "{}")
        with reader.lock():
            self.assertFalse(os.path.exists(path))
        writer = RunFolder(path)
        with writer.lock():
            self.assertTrue(os.path.exists(
                os.path.join(path, workdir_lock.LOCK_FILENAME)))
            with writer.lock():  # Re-entrant within the process.
                pass
        self.assertFalse(os.path.exists(
            os.path.join(path, workdir_lock.LOCK_FILENAME)))

    def test_cleanup_levels(self):
        folder = RunFolder(os.path.join(self.get_temp_dir(), "run"))
        self.assertFalse(folder.has_training_state())
        for directory in (folder.checkpoint_dir, folder.report_dir,
                          folder.export_dir, folder.tensorboard_dir):
            os.makedirs(directory)
        open(os.path.join(folder.checkpoint_dir, "state.json"), "w").close()
        folder.write_text("config.json", "{}")
        folder.append_log(0, {"loss": 1.0})
        open(folder.model_path, "w").close()
        self.assertTrue(folder.has_training_state())
        folder.remove_training_state()
        self.assertFalse(folder.has_training_state())
        self.assertFalse(os.path.exists(folder.log_path))
        self.assertTrue(os.path.exists(folder.report_dir))
        self.assertTrue(os.path.exists(folder.config_path))
        folder.remove_outputs()
        self.assertEqual(os.listdir(folder.path), [])
