"""A plain-PyTorch replica of the reference BalPoE CIFAR model and train step.

Our speed comparisons are stated against the reference PyTorch code ("as
shipped": NCHW float32, `torch.optim.SGD` with Nesterov). That code is not
installable offline, so this file rebuilds what its training step computes,
following the reference's `model/ldam_drw_resnets/expert_resnet_cifar.py`
and `model/loss.py`: ResNet-32 with a shared stem
and layer1, per-expert layer2/layer3 (option-A shortcuts), average pooling,
`NormedLinear` x 30 per expert, mean of the expert logits, the BalPoE loss
(mean over experts of cross-entropy of `z_m + (1 - lambda_m) * log prior`) and
SGD(lr 0.1, momentum 0.9, Nesterov, weight decay 5e-4). It is used by
`benchmarks/throughput.py` (configs `reference_torch`, `reference_torch_cl`)
so that our Keras paths and the reference are timed on the same machine in
the same run, and by `reproduction/reference_train.py`, the replica that
trains the whole reference recipe. It does not import balpoe_keras or
Keras.
"""

import torch
from torch import nn
from torch.nn import functional as F


class _Shortcut(nn.Module):
    """Option A: x[:, :, ::2, ::2] with (out-in)/2 zero channels each side."""

    def __init__(self, pad):
        super().__init__()
        self.pad = pad

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class _BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN + shortcut, ReLU (expert_resnet_cifar.py)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = (_Shortcut((cout - cin) // 2)
                         if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def _layer(cin, cout, stride, blocks=5):
    layers = [_BasicBlock(cin, cout, stride)]
    layers += [_BasicBlock(cout, cout, 1) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class _NormedLinear(nn.Module):
    """Cosine classifier: normalize(x) @ normalize(W, dim 0), W: (D, C)."""

    def __init__(self, features, classes):
        super().__init__()
        weight = torch.empty(features, classes).uniform_(-1, 1)
        self.weight = nn.Parameter(weight / weight.norm(dim=0, keepdim=True))

    def forward(self, x):
        return F.normalize(x, dim=1).mm(F.normalize(self.weight, dim=0))


class ReferenceResNet32(nn.Module):
    """3-expert ResNet-32 of the reference; forward (B,3,32,32) -> (B,M,C)."""

    def __init__(self, num_classes=100, num_experts=3, scale=30.0, blocks=5):
        super().__init__()
        self.scale = scale
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = _layer(16, 16, 1, blocks)
        self.layer2s = nn.ModuleList(
            [_layer(16, 32, 2, blocks) for _ in range(num_experts)])
        self.layer3s = nn.ModuleList(
            [_layer(32, 64, 2, blocks) for _ in range(num_experts)])
        self.linears = nn.ModuleList(
            [_NormedLinear(64, num_classes) for _ in range(num_experts)])
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)

    def forward(self, x):
        shared = self.layer1(F.relu(self.bn1(self.conv1(x))))
        logits = []
        for layer2, layer3, linear in zip(self.layer2s, self.layer3s,
                                          self.linears):
            feat = layer3(layer2(shared))
            feat = F.avg_pool2d(feat, feat.shape[3]).flatten(1)
            logits.append(self.scale * linear(feat))
        return torch.stack(logits, dim=1)


def make_train_step(counts, lambdas=(1.0, 0.0, -1.0), channels_last=False,
                    compile=False, device="cpu"):
    """Returns (model, step(x, y) -> loss): one reference SGD step.

    Args:
      counts: per-class training counts, length C.
      lambdas: one lambda per expert.
      channels_last: use PyTorch's channels-last memory format (the
        reference ships NCHW; this is the "~150 images/s" variant).
      compile: `torch.compile` the model's forward (the reference does
        not).
      device: torch device.
    """
    torch.manual_seed(0)
    model = ReferenceResNet32(len(counts), len(lambdas)).to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    forward = torch.compile(model) if compile else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9,
                                weight_decay=5e-4, nesterov=True)
    prior = torch.tensor(counts, dtype=torch.float32)
    log_prior = torch.log(prior / prior.sum() + 1e-9)
    # Expert m trains on z_m + tau_m * log(prior), tau = 1 - lambda
    # (the reference's model/loss.py).
    tau = 1.0 - torch.tensor(lambdas, dtype=torch.float32)
    adjust = (tau[:, None] * log_prior[None, :]).to(device)

    def step(x, y):
        model.train()
        x = x.contiguous(memory_format=fmt)
        expert_logits = forward(x)  # (B, M, C)
        num_experts = expert_logits.shape[1]
        loss = sum(F.cross_entropy(expert_logits[:, m] + adjust[m], y)
                   for m in range(num_experts)) / num_experts
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return model, step
