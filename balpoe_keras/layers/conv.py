"""`Conv2D`: Keras' 2-D convolution, without layout copies on PyTorch.

Everything, weights included, is Keras' `Conv2D`. On PyTorch it first
offers the call to `torch_fast_path.conv2d` (`fast_path.find`), which
hands a channels-last input to `torch.nn.functional.conv2d` without Keras'
layout copies; other backends and the settings it does not cover
(dilation, asymmetric "same") run Keras' own path.
"""

import keras

from balpoe_keras.layers import fast_path


@keras.saving.register_keras_serializable(package="balpoe_keras")
class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` with a copy-free channels-last PyTorch path.

    Same arguments, weights (`(kh, kw, C_in / groups, filters)` kernel) and
    results as `keras.layers.Conv2D`.

    Input shape: `(batch, H, W, C_in)` (channels last). Output: `(batch, H',
    W', filters)`.
    """

    def call(self, inputs):
        outputs = fast_path.run("balpoe_keras.layers", "conv2d", self, inputs)
        if outputs is None:
            outputs = super().call(inputs)
        return outputs
