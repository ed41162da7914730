"""Class-aware resampling: the class probabilities of each mode (NumPy).

Off by default (the reference samples instances uniformly). The tf.data
executor draws epochs from these probabilities
(`balpoe_keras.data.tfdata.sampling`).

Class probabilities: `"instance"` `p_c = n_c / N`; `"sqrt"`
`p_c = sqrt(n_c) / sum(sqrt(n))`; `"balanced"` `p_c = 1 / C'` over the
`C'` classes that have images. Within a class, images are uniform.
"""

import numpy as np

MODES = ("instance", "sqrt", "balanced")


def class_sampling_probs(class_counts, mode):
    """`(C,)` float64 class probabilities for a resampling `mode`.

    Classes with zero images get probability 0.
    """
    counts = np.asarray(class_counts, dtype=np.float64)
    if mode not in MODES:
        raise ValueError(f"Unknown resample mode {mode!r}. Expected {MODES}.")
    if counts.ndim != 1 or counts.sum() <= 0 or np.any(counts < 0):
        raise ValueError(f"Bad class counts: {counts.tolist()}")
    weights = {"instance": counts, "sqrt": np.sqrt(counts),
               "balanced": (counts > 0).astype(np.float64)}[mode]
    return weights / weights.sum()
