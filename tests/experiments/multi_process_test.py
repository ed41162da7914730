"""The runner over several JAX processes on 127.0.0.1 (loopback only).

A 2-process run trains, checkpoints, resumes and reports like a 1-process
run of the same global batch; a process that dies makes the other stop
with an error naming it; rerunning resumes from the checkpoint process 0
wrote, bitwise equal to an uninterrupted run. Both sources are read by
every process: a folder of images (`--dataset=image_folder`, the synthetic
CIFAR archive extracted; each process scans, checks and decodes it) and the
archive itself (`cifar10_lt_folder`, in the 2 x 2-device run).
"""

import csv
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from balpoe_keras.training import multi_host
from tests.cifar_archive import write_cifar_archive
from tests.experiments.flags_util import FLAGFILE_DIR
from tests.multi_process import Processes
from tests.multi_process import process_env
from tests.multi_process import run_processes
from tests.test_case import TestCase

pytestmark = [
    pytest.mark.large,
    pytest.mark.skipif(keras.backend.backend() != "jax",
                       reason="multi-process runs are JAX's (JAX pass)"),
]
_TIMEOUT = 240


def _runner_args(data_dir, workdir, epochs=3, folder=True):
    return ["-m", "balpoe_keras.experiments.run",
            f"--flagfile={FLAGFILE_DIR}/quickstart.flags",
            f"--data_dir={data_dir}", f"--workdir={workdir}",
            "--architecture=resnet8", f"--epochs={epochs}",
            "--warmup_epochs=1", "--lr_step_epochs=1",
            "--max_train_steps_per_epoch=4", "--imbalance_ratio=10",
            "--batch_size=16", "--export=false",
            # A small step keeps 8 steps in float noise: at 0.1 the tiny
            # model on random pixels amplifies 1e-7 to 1e-3.
            "--learning_rate=0.005",
            "--test_distributions=false", "--input_pipeline=arrays",
            *(["--dataset=image_folder"] if folder else [])]


def _processes(data_dir, workdir, num_processes, epochs=3, folder=True):
    def command(index, address):
        return [*_runner_args(data_dir, workdir, epochs, folder),
                f"--coordinator_address={address}",
                f"--num_processes={num_processes}", f"--process_id={index}"]

    return command


def _weights(workdir):
    model = keras.saving.load_model(os.path.join(workdir, "model.keras"),
                                    compile=False)
    return [np.asarray(w) for w in model.get_weights()]


def _losses(workdir):
    with open(os.path.join(workdir, "train_log.csv"), newline="") as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


def _assert_ok(outputs):
    for index, (code, out, err) in enumerate(outputs):
        assert code == 0, f"process {index}: {err[-3000:]}"


class MultiProcessRunTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        import tempfile

        from balpoe_keras.data.image_folder import extract_archive

        cls.tmp = tempfile.mkdtemp()
        write_cifar_archive(cls.tmp, train_per_class=30, test_per_class=4)
        cls.root = extract_archive(
            os.path.join(cls.tmp, "cifar10-jpeg.tar.gz"),
            os.path.join(cls.tmp, "folders"))
        one = os.path.join(cls.tmp, "one")
        done = subprocess.run(
            [sys.executable, *_runner_args(cls.root, one)],
            env=process_env(), capture_output=True, text=True,
            timeout=_TIMEOUT)
        assert done.returncode == 0, done.stderr[-3000:]
        cls.one = one

    def test_two_processes_equal_one_and_resume_exactly_after_a_death(self):
        # (a) 2 processes x 1 CPU device: the same run as 1 process.
        two = os.path.join(self.tmp, "two")
        outputs = run_processes(_processes(self.root, two, 2), 2,
                                process_env(), timeout=_TIMEOUT)
        _assert_ok(outputs)
        self.assertIn("Processes: 2 (this is process 0", outputs[0][1])
        self.assertNotIn("Epoch 1/", outputs[1][1])  # Process 1 is quiet.
        self.assertEqual(sorted(os.listdir(two)),
                         ["checkpoints", "config.json", "data.json",
                          "model.keras", "report", "tensorboard",
                          "train_log.csv"])
        uninterrupted = _weights(two)
        self.assertAllClose(_losses(two), _losses(self.one), atol=1e-5)
        for got, want in zip(uninterrupted, _weights(self.one)):
            self.assertAllClose(got, want, atol=1e-5)

        # (c) Kill process 1 during epoch 2 or 3: process 0 stops, naming
        # it; the rerun resumes from process 0's checkpoint and ends
        # bitwise equal to the uninterrupted run.
        killed = os.path.join(self.tmp, "killed")
        procs = Processes(_processes(self.root, killed, 2), 2,
                          process_env()).start()
        state = os.path.join(killed, "checkpoints", "state.json")
        deadline = time.time() + _TIMEOUT
        while not os.path.exists(state) and time.time() < deadline:
            time.sleep(0.2)
        procs.kill(1)
        started = time.time()
        code, _, err = procs.wait(_TIMEOUT)[0]
        self.assertLess(time.time() - started,
                        multi_host.DEFAULT_HEARTBEAT_TIMEOUT_SECONDS + 30)
        self.assertNotEqual(code, 0)
        self.assertRegex(err, r"error: process\(es\) 1 of 2 stopped")
        outputs = run_processes(_processes(self.root, killed, 2), 2,
                                process_env(), timeout=_TIMEOUT)
        _assert_ok(outputs)
        self.assertIn("Resuming from", outputs[0][1])
        for got, want in zip(_weights(killed), uninterrupted):
            np.testing.assert_array_equal(got, want)

    def test_two_processes_with_two_devices_each(self):
        # (d) 4 devices in all, 4 images of every global batch each, reading
        # the archive: the same run as 1 process.
        one = os.path.join(self.tmp, "archive_one")
        done = subprocess.run(
            [sys.executable, *_runner_args(self.tmp, one, folder=False)],
            env=process_env(), capture_output=True, text=True,
            timeout=_TIMEOUT)
        self.assertEqual(done.returncode, 0, done.stderr[-3000:])
        four = os.path.join(self.tmp, "four")
        outputs = run_processes(
            _processes(self.tmp, four, 2, folder=False), 2,
            process_env(devices_per_process=2), timeout=_TIMEOUT)
        _assert_ok(outputs)
        self.assertIn("4 devices in all; each process feeds 8 images",
                      outputs[0][1])
        for got, want in zip(_weights(four), _weights(one)):
            self.assertAllClose(got, want, atol=1e-5)

    def test_bad_settings_fail_in_one_line(self):
        args = _runner_args(self.root, os.path.join(self.tmp, "bad"))
        launch = ["--coordinator_address=127.0.0.1:1", "--num_processes=2"]
        for extra, message, backend in (
                (["--num_processes=2", "--process_id=0"], "go together",
                 "jax"),
                ([*launch, "--process_id=2"],
                 r"--process_id must be in \[0, 2\)", "jax"),
                ([*launch, "--process_id=0"], "needs KERAS_BACKEND=jax",
                 "torch")):
            done = subprocess.run([sys.executable, *args, *extra],
                                  env=process_env(KERAS_BACKEND=backend),
                                  capture_output=True, text=True,
                                  timeout=_TIMEOUT)
            self.assertEqual(done.returncode, 2)
            self.assertRegex(done.stderr.strip().splitlines()[-1],
                             f"^error: .*{message}")
