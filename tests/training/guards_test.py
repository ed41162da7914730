"""Tests for `StopOnRequest` and `NonFiniteLossGuard` as Keras calls them.

Both are `async_safe`: on the JAX and PyTorch backends Keras runs their
batch-end hooks in a thread pool, concurrently and out of order.
"""

import concurrent.futures
import contextlib
import io
import math
import signal
from unittest import mock

import keras

from balpoe_keras.training import guards
from tests.test_case import TestCase


def _hooks_concurrently(callback, batches_and_logs):
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(callback.on_train_batch_end, batch, logs)
                   for batch, logs in batches_and_logs]
        for future in futures:
            future.result()


class NonFiniteLossGuardTest(TestCase):
    def test_names_the_first_bad_step_whatever_the_order(self):
        guard = guards.NonFiniteLossGuard(step_offset=10)
        guard.set_model(mock.Mock(stop_training=False))
        guard.on_epoch_begin(4)
        logs = [(b, {"loss": math.nan if b >= 7 else 1.0})
                for b in reversed(range(40))]
        _hooks_concurrently(guard, logs)
        # Epoch index 4 -> epoch 5; batch 7 -> step 8, plus the offset.
        self.assertEqual(guard.found[:2], (5, 18))
        self.assertTrue(math.isnan(guard.found[2]))
        self.assertTrue(guard.model.stop_training)

    def test_inf_and_tensor_losses(self):
        guard = guards.NonFiniteLossGuard()
        guard.set_model(mock.Mock(stop_training=False))
        guard.on_train_batch_end(0, {"loss": keras.ops.convert_to_tensor(2.0)})
        self.assertIsNone(guard.found)
        self.assertFalse(guard.model.stop_training)
        guard.on_train_batch_end(1, {"loss": keras.ops.convert_to_tensor(
            [1.0, math.inf])})
        self.assertEqual(guard.found, (1, 2, math.inf))


class StopOnRequestTest(TestCase):
    def test_counts_the_last_step_and_stops_once_requested(self):
        request = guards.StopRequest()
        stopper = guards.StopOnRequest(request)
        stopper.set_model(mock.Mock(stop_training=False))
        stopper.on_epoch_begin(0)
        _hooks_concurrently(stopper, [(b, {}) for b in reversed(range(30))])
        self.assertEqual(stopper.steps_done, 30)
        self.assertFalse(stopper.model.stop_training)
        request.signum = 15
        stopper.on_train_batch_end(30, {})
        self.assertEqual(stopper.steps_done, 31)
        self.assertTrue(stopper.model.stop_training)

    def test_the_signal_handler_stops_fit_after_the_current_step(self):
        # The batch-end hook may run a step late in a worker thread; the
        # handler (main thread, during the step) sets the flag itself.
        request = guards.StopRequest()
        stopper = guards.StopOnRequest(request)
        stopper.set_model(mock.Mock(stop_training=False))
        stopper.on_train_begin()
        with contextlib.redirect_stdout(io.StringIO()) as out:
            request._handle(signal.SIGTERM, None)
        self.assertTrue(stopper.model.stop_training)
        self.assertIn("SIGTERM received", out.getvalue())
        stopper.on_train_end()
        self.assertIsNone(request.on_request)
