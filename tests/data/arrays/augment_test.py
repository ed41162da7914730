import keras
import numpy as np

from balpoe_keras.data.arrays import augment
from tests.test_case import TestCase

# 3x3 single-channel image with pixel values 1..9 (row-major).
IMAGE = np.arange(1, 10, dtype=np.uint8).reshape(1, 3, 3, 1)


def _np(x):
    return keras.ops.convert_to_numpy(x)


class CropFlipTest(TestCase):
    def test_identity_offset_only_converts_to_float(self):
        # Offset == padding is the un-shifted crop.
        out = augment.apply_crop_flip(IMAGE, [[1, 1]], [False], padding=1)
        self.assertAllClose(out, IMAGE / 255.0)
        self.assertEqual(keras.backend.standardize_dtype(out.dtype),
                         "float32")

    def test_crop_shifts_by_offsets_with_zero_fill(self):
        # padding 1, offset (row 0, col 2): out[i, j] = I[i - 1, j + 1].
        # Row 0 comes from the top padding; column 2 from the right padding.
        out = augment.apply_crop_flip(IMAGE, [[0, 2]], [False], padding=1)
        expected = np.array([[0, 0, 0], [2, 3, 0], [5, 6, 0]]) / 255.0
        self.assertAllClose(_np(out)[0, :, :, 0], expected)

    def test_flip_mirrors_columns(self):
        out = augment.apply_crop_flip(IMAGE, [[1, 1]], [True], padding=1)
        expected = np.array([[3, 2, 1], [6, 5, 4], [9, 8, 7]]) / 255.0
        self.assertAllClose(_np(out)[0, :, :, 0], expected)

    def test_flip_applies_after_crop(self):
        # Crop (row 2, col 0): [[4,5,6],[7,8,9],[0,0,0]] shifted right by 1
        # -> [[0,4,5],[0,7,8],[0,0,0]]; then the flip mirrors it.
        out = augment.apply_crop_flip(IMAGE, [[2, 0]], [True], padding=1)
        expected = np.array([[5, 4, 0], [8, 7, 0], [0, 0, 0]]) / 255.0
        self.assertAllClose(_np(out)[0, :, :, 0], expected)

    def test_per_image_parameters_and_channels(self):
        images = np.stack([IMAGE[0], 10 * IMAGE[0]]).repeat(3, axis=-1)
        out = _np(augment.apply_crop_flip(
            images, [[1, 1], [0, 0]], [True, False], padding=1))
        # Image 0: flipped only. Image 1: shifted down-right by one.
        self.assertAllClose(out[0, 0, :, 1], np.array([3, 2, 1]) / 255.0)
        self.assertAllClose(out[1, :, :, 2],
                            np.array([[0, 0, 0], [0, 10, 20],
                                      [0, 40, 50]]) / 255.0)

    def test_float_input_in_unit_range_is_kept(self):
        images = IMAGE.astype("float32") / 255.0
        out = augment.apply_crop_flip(images, [[0, 2]], [False], padding=1)
        expected = np.array([[0, 0, 0], [2, 3, 0], [5, 6, 0]]) / 255.0
        self.assertAllClose(_np(out)[0, :, :, 0], expected, atol=1e-7)

    def test_rotation_by_90_degrees_is_counter_clockwise(self):
        image = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1)
        out = augment.apply_crop_flip(
            image, [[4, 4]], [False], augment.rotation_matrices([90.0], 4, 4),
            padding=4)
        # np.rot90 rotates counter-clockwise, as PIL's rotate(+90) does.
        self.assertAllClose(_np(out)[0, :, :, 0],
                            np.rot90(image[0, :, :, 0]) / 255.0)

    def test_zero_angle_rotation_is_identity(self):
        out = augment.apply_crop_flip(
            IMAGE, [[1, 1]], [False], augment.rotation_matrices([0.0], 3, 3),
            padding=1)
        self.assertAllClose(out, IMAGE / 255.0)

    def test_rotation_matrix_hand_computed(self):
        # 90 deg on 4x4: PIL's matrix (cos, sin) = (0, -1) after negating
        # the angle: a = (0, -1, 4, 1, 0, 0). Fixed point (x 65536):
        # A2 = FIX(4 + 0 - 0.5) = 3.5 * 65536 = 229376, A5 = FIX(0.5).
        self.assertEqual(augment.rotation_matrices([90.0], 4, 4).tolist(),
                         [[0, -65536, 229376, 65536, 0, 32768]])
        # 0 deg is the identity: output (x, y) samples (x, y).
        self.assertEqual(augment.rotation_matrices([0.0], 4, 4).tolist(),
                         [[65536, 0, 32768, 0, 65536, 32768]])

    def test_small_rotation_fills_corners_with_zero(self):
        image = np.full((1, 8, 8, 1), 255, np.uint8)
        out = _np(augment.apply_crop_flip(
            image, [[0, 0]], [False], augment.rotation_matrices([15.0], 8, 8),
            padding=0))[0, :, :, 0]
        # Corners leave the rotated frame; the centre stays.
        self.assertEqual(out[0, 0], 0.0)
        self.assertEqual(out[4, 4], 1.0)


class MixupTest(TestCase):
    def test_hand_computed_mixup(self):
        images = np.array([0.0, 1.0, 0.5], "float32").reshape(3, 1, 1, 1)
        labels = np.array([0, 1, 2])
        mixed, soft = augment.apply_mixup(images, labels, 0.25, [1, 0, 2], 3)
        # x' = .25 x + .75 x[perm]: [.75, .25, .5]
        self.assertAllClose(_np(mixed).reshape(-1), [0.75, 0.25, 0.5])
        self.assertAllClose(soft, [[0.25, 0.75, 0.0], [0.75, 0.25, 0.0],
                                   [0.0, 0.0, 1.0]])
        # (B, 1) ids and one-hot rows give the same soft labels (they gave
        # (B, 1, C) and (B, C, C) rows).
        for given in (labels[:, None], np.eye(3, dtype="float32")[labels]):
            with self.subTest(shape=given.shape):
                self.assertAllClose(augment.apply_mixup(
                    images, given, 0.25, [1, 0, 2], 3)[1], soft)

    def test_mix_pair_equals_apply_mixup_of_permuted_batch(self):
        images = np.random.rand(4, 2, 2, 3).astype("float32")
        labels = np.array([3, 1, 0, 2])
        perm = np.array([2, 0, 3, 1])
        a = augment.apply_mixup(images, labels, 0.3, perm, 4)
        b = augment.mix_pair(images, images[perm], labels, labels[perm],
                             0.3, 4)
        self.assertAllClose(a[0], b[0])
        self.assertAllClose(a[1], b[1])


class DrawTest(TestCase):
    def test_crop_flip_params_ranges(self):
        params = augment.draw_crop_flip_params(64, seed=1, padding=4,
                                               max_degrees=15.0)
        self.assertEqual(params["rotations"].shape, (64, 6))
        offsets = _np(params["offsets"])
        self.assertEqual(offsets.shape, (64, 2))
        self.assertTrue(offsets.min() >= 0 and offsets.max() <= 8)
        self.assertEqual(_np(params["flips"]).shape, (64,))
        angles = _np(params["angles"])
        self.assertTrue(np.all(np.abs(angles) <= 15.0))
        self.assertIsNone(augment.draw_crop_flip_params(4, 1)["angles"])
        self.assertIsNone(augment.draw_crop_flip_params(4, 1)["rotations"])

    def test_mixup_params_are_seeded(self):
        lam, perm = augment.draw_mixup_params(8, 0.8, seed=3)
        lam2, perm2 = augment.draw_mixup_params(8, 0.8, seed=3)
        self.assertTrue(0.0 <= float(_np(lam)) <= 1.0)
        self.assertEqual(sorted(_np(perm).tolist()), list(range(8)))
        self.assertAllClose(lam, lam2)
        self.assertAllClose(perm, perm2)

    def test_bad_alpha_raises(self):
        with self.assertRaisesRegex(ValueError, "alpha > 0"):
            augment.draw_mixup_params(4, 0.0)

    def test_augment_batch_outputs(self):
        images = np.random.randint(0, 256, (4, 8, 8, 3)).astype("uint8")
        labels = np.array([0, 1, 2, 1])
        x, y = augment.augment_batch(images, labels, np.random.default_rng(1),
                                     num_classes=3, mixup_alpha=0.8,
                                     max_degrees=15.0)
        # The batch is the apply_* functions of the draws, in order: crop /
        # flip / rotation parameters, then the Mixup weight and partners.
        rng = np.random.default_rng(1)
        p = augment.draw_crop_flip_params(4, rng, 4, 15.0, (8, 8))
        lam, perm = augment.draw_mixup_params(4, 0.8, rng)
        crops = augment.apply_crop_flip(images, p["offsets"], p["flips"],
                                        p["rotations"])
        self.assertBetween(float(lam), 0.05, 0.95)  # seed 1: really mixed
        self.assertFalse(np.array_equal(perm, np.arange(4)))
        eye = np.eye(3)
        crops = _np(crops)
        self.assertAllClose(x, lam * crops + (1 - lam) * crops[perm],
                            atol=1e-6)
        self.assertAllClose(y, lam * eye[labels] + (1 - lam)
                            * eye[labels[perm]], atol=1e-6)
        self.assertTrue(_np(x).min() >= 0.0 and _np(x).max() <= 1.0)
        # Mixup off: the crops of the same draws, int labels unchanged.
        x, y = augment.augment_batch(images, labels, 0)
        p = augment.draw_crop_flip_params(4, 0)
        self.assertAllClose(x, augment.apply_crop_flip(
            images, p["offsets"], p["flips"]))
        self.assertAllClose(y, labels)
        with self.assertRaisesRegex(ValueError, "num_classes"):
            augment.augment_batch(images, labels, 0, mixup_alpha=0.5)
