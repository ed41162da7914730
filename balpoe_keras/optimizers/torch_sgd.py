"""`TorchSGD`: SGD with exactly PyTorch's coupled L2 and momentum update.

Keras 3's `SGD(weight_decay=...)` decays weights *decoupled* from the
gradient, and its Nesterov variant folds the learning rate into the
velocity, which differs from PyTorch whenever the LR changes (warm-up, step
decay, cosine). The reference trains with
`torch.optim.SGD(lr, momentum=0.9, nesterov=True, weight_decay=wd)` with
dampening 0 on all parameters (reference `train.py`); `TorchSGD` reproduces it.
"""

import keras
from keras import ops

from balpoe_keras.layers import fast_path


@keras.saving.register_keras_serializable(package="balpoe_keras")
class TorchSGD(keras.optimizers.Optimizer):
    """PyTorch-exact SGD: coupled L2 weight decay, torch-style momentum.

    For every trainable variable `w` with gradient `g`, at learning rate
    `lr` (the schedule's value at the current `iterations`):

        g   <- g + weight_decay * w        (coupled L2, all variables)
        buf <- momentum * buf + g          (buf starts at 0, so buf_1 = g_1)
        w   <- w - lr * (g + momentum * buf)   if nesterov
        w   <- w - lr * buf                    otherwise

    The buffer holds gradients, not LR-scaled steps, so a learning-rate
    change takes effect immediately (PyTorch semantics). The decay is applied
    to every variable the optimizer updates, BN `gamma`/`beta` and cosine
    head kernels included, as in the reference.

    Args:
        learning_rate: float or `LearningRateSchedule` (e.g.
            `WarmupStepSchedule`).
        momentum: float in `[0, 1)`; 0 disables the buffer.
        nesterov: bool, Nesterov momentum (needs `momentum > 0`).
        weight_decay: float >= 0, the coupled L2 coefficient (PyTorch's
            `weight_decay`; NOT Keras' decoupled decay).
        name: optimizer name.
        **kwargs: other `keras.optimizers.Optimizer` arguments (`clipnorm`,
            `global_clipnorm`, `loss_scale_factor`, ...). Keras' decoupled
            `weight_decay` is not accepted.
    """

    def __init__(
        self,
        learning_rate=0.1,
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        name="torch_sgd",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(
                f"Expected momentum in [0, 1). Received: momentum={momentum}"
            )
        if nesterov and momentum == 0:
            raise ValueError(
                "Nesterov momentum requires momentum > 0. Set momentum=0.9 "
                "or nesterov=False."
            )
        if weight_decay is None or weight_decay < 0:
            raise ValueError(
                "Expected weight_decay >= 0 (coupled L2, as in PyTorch). "
                f"Received: weight_decay={weight_decay}"
            )
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        # Keras' own `self.weight_decay` stays None (decoupled decay off).
        self.l2_weight_decay = float(weight_decay)

    def build(self, variables):
        """Creates one zero-initialised momentum buffer per variable."""
        if self.built:
            return
        super().build(variables)
        self.momentums = []
        if self.momentum != 0:
            self.momentums = self.add_optimizer_variables(variables, "momentum")

    def _backend_update_step(self, grads, trainable_variables,
                             learning_rate):
        """Keras' private hook for one step of all variables (Keras' own
        torch optimizers override it for speed too). On PyTorch the step
        is `optimizers.torch_fast_path.sgd_update` (`torch._foreach_*`);
        elsewhere Keras' default, the public `update_step` per variable
        (and, on TensorFlow, its `tf.distribute` handling)."""
        if fast_path.run("balpoe_keras.optimizers", "sgd_update", self,
                         grads, trainable_variables, learning_rate) is None:
            super()._backend_update_step(grads, trainable_variables,
                                         learning_rate)

    def update_step(self, gradient, variable, learning_rate):
        """One PyTorch SGD step for `variable` (see the class docstring)."""
        dtype = variable.dtype
        learning_rate = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        if self.l2_weight_decay:
            decay = ops.cast(self.l2_weight_decay, dtype)
            gradient = ops.add(gradient, ops.multiply(decay, variable))
        if self.momentum == 0:
            self.assign_sub(variable, ops.multiply(learning_rate, gradient))
            return
        buf = self.momentums[self._get_variable_index(variable)]
        momentum = ops.cast(self.momentum, dtype)
        new_buf = ops.add(ops.multiply(momentum, buf), gradient)
        self.assign(buf, new_buf)
        if self.nesterov:
            step = ops.add(gradient, ops.multiply(momentum, new_buf))
        else:
            step = new_buf
        self.assign_sub(variable, ops.multiply(learning_rate, step))

    def get_config(self):
        config = super().get_config()
        config.pop("weight_decay", None)
        config.update(
            {
                "momentum": self.momentum,
                "nesterov": self.nesterov,
                "weight_decay": self.l2_weight_decay,
            }
        )
        return config
