"""Tests for balpoe_keras.data.idx (NumPy only)."""

import gzip
import os

import numpy as np

from balpoe_keras.data.idx import read_idx
from balpoe_keras.data.idx import write_idx
from tests.test_case import TestCase


class IdxTest(TestCase):
    def test_hand_written_header(self):
        path = os.path.join(self.get_temp_dir(), "x-idx3-ubyte.gz")
        # magic 0x00000803 (uint8, 3 dims), dims 2x2x3 big-endian, 12 bytes.
        raw = bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3])
        with gzip.open(path, "wb") as f:
            f.write(raw + bytes(range(12)))
        data = read_idx(path)
        self.assertEqual(data.shape, (2, 2, 3))
        self.assertEqual(data.dtype, np.uint8)
        self.assertEqual(data[1, 1, 2], 11)

    def test_round_trip_plain_and_int32(self):
        path = os.path.join(self.get_temp_dir(), "labels-idx1-ubyte")
        labels = np.array([3, -1, 70000], np.int32)
        write_idx(path, labels)
        np.testing.assert_array_equal(read_idx(path), labels)

    def test_malformed(self):
        tmp = self.get_temp_dir()
        bad = os.path.join(tmp, "bad")
        with open(bad, "wb") as f:
            f.write(b"\x89PNG....")
        with self.assertRaisesRegex(ValueError, "not an IDX file"):
            read_idx(bad)
        short = os.path.join(tmp, "short.gz")
        write_idx(short, np.zeros((4, 2), np.uint8))
        with gzip.open(short) as f:
            raw = f.read()
        with gzip.open(short, "wb") as f:
            f.write(raw[:-3])
        with self.assertRaisesRegex(ValueError, "truncated or corrupt"):
            read_idx(short)
