"""Mixup and CutMix settings: the one place they are checked (NumPy only).

Mixup (the reference's `utils/combiner.py`): one `lam ~ Beta(alpha,
alpha)` per batch, a full permutation `perm` of the batch (a sample may be
paired with itself), `x' = lam x + (1 - lam) x[perm]` and soft labels
`lam onehot(y) + (1 - lam) onehot(y[perm])`. CutMix pastes a box of side
ratio `sqrt(1 - lam)` from `x[perm]`. With both alphas set, each batch
uses one of the two with probability 0.5 (`"mixup_cutmix"`). The tf.data
executor implements all three (`balpoe_keras.data.tfdata.mixup`), the
in-memory one Mixup (`balpoe_keras.data.arrays.augment`).
"""

import math
import numbers

MODES = ("mixup", "cutmix", "mixup_cutmix")
_UNCHECKED = object()


def mix_mode(mixup_alpha=0.0, cutmix_alpha=0.0):
    """None (no mixing), `"mixup"`, `"cutmix"` or `"mixup_cutmix"`."""
    modes = {(True, False): "mixup", (False, True): "cutmix",
             (True, True): "mixup_cutmix"}
    return modes.get((mixup_alpha > 0, cutmix_alpha > 0))


def validate_mixing(mixup_alpha=0.0, cutmix_alpha=0.0, mode=None, *,
                    num_classes=_UNCHECKED):
    """Checks the mixing settings; returns `(mixup_alpha, cutmix_alpha,
    mode)` as floats and the mode (None: no mixing).

    Args:
        mixup_alpha: float >= 0, Mixup's Beta parameter; 0 = off.
        cutmix_alpha: float >= 0, CutMix's Beta parameter; 0 = off.
        mode: one of `MODES`, or None for `mix_mode(...)` of the alphas.
        num_classes: when given, must be an int >= 2 if mixing is on (the
            soft labels need it); None then is an error too.

    Raises:
        ValueError: naming the argument, its value and the fix.
    """
    for name, value in (("mixup_alpha", mixup_alpha),
                        ("cutmix_alpha", cutmix_alpha)):
        if not (isinstance(value, numbers.Real) and math.isfinite(value)
                and value >= 0):
            raise ValueError(
                f"Expected {name} to be a finite number >= 0 (0 turns it "
                f"off). Received: {name}={value!r}")
    if mode is None:
        mode = mix_mode(mixup_alpha, cutmix_alpha)
    elif mode not in MODES:
        raise ValueError(
            f"Unknown mix mode {mode!r}. Expected one of {MODES}.")
    elif (mode != "cutmix" and mixup_alpha <= 0) or (
            mode != "mixup" and cutmix_alpha <= 0):
        raise ValueError(
            f"mode={mode!r} needs mixup_alpha > 0 (mixup) and cutmix_alpha "
            f"> 0 (cutmix). Received mixup_alpha={mixup_alpha}, "
            f"cutmix_alpha={cutmix_alpha}.")
    if mode is not None and num_classes is not _UNCHECKED and (
            not isinstance(num_classes, numbers.Integral) or num_classes < 2):
        raise ValueError(
            "Mixing needs the number of classes for its soft labels. "
            f"Received: num_classes={num_classes!r}")
    return float(mixup_alpha), float(cutmix_alpha), mode
