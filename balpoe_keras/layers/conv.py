"""`Conv2D`: Keras' 2-D convolution, without layout copies on PyTorch.

On the PyTorch backend Keras runs a channels-last convolution by copying the
input to channels-first memory and then again to PyTorch's channels-last
memory format, plus copies of the output (about 17 % of the ResNet-32's
training time on a CPU). A contiguous `(B, H, W, C)` tensor already *is* a
channels-last `(B, C, H, W)` tensor in PyTorch's terms, so `Conv2D` hands
its permuted view to `torch.nn.functional.conv2d` directly
(`torch_conv.py`). Everything else, weights included, is Keras' `Conv2D`;
other backends and unsupported settings (dilation, asymmetric "same")
run Keras' own path.
"""

import keras


@keras.saving.register_keras_serializable(package="balpoe_keras")
class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` with a copy-free channels-last PyTorch path.

    Same arguments, weights (`(kh, kw, C_in / groups, filters)` kernel) and
    results as `keras.layers.Conv2D`.

    Input shape: `(batch, H, W, C_in)` (channels last). Output: `(batch, H',
    W', filters)`.
    """

    def call(self, inputs):
        if self._use_torch_kernel(inputs):
            from balpoe_keras.layers import torch_conv

            outputs = torch_conv.conv2d_channels_last(
                inputs, self.kernel.value, self.strides, self.padding,
                self.groups)
            if self.use_bias:
                outputs = outputs + self.bias.value
            if self.activation is not None:
                outputs = self.activation(outputs)
            return outputs
        return super().call(inputs)

    def _use_torch_kernel(self, inputs):
        if keras.backend.backend() != "torch":
            return False
        if self.data_format != "channels_last" or any(
                d != 1 for d in self.dilation_rate):
            return False
        if self.padding == "same" and (any(
                k % 2 == 0 for k in self.kernel_size) or any(
                s != 1 for s in self.strides)):
            return False
        from balpoe_keras.layers import torch_batch_norm

        return torch_batch_norm.is_concrete(inputs)
