"""The named multi-expert ResNets and their structure (no Keras needed).

One registry: the experiment runner validates `--architecture` and
`--shared_stages` with it before Keras loads, and `balpoe_keras.models`
builds each name with its family's builders (`models.REGISTRY`).
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class ArchitectureSpec:
    """The structure of a named multi-expert ResNet.

    Attributes:
        family: the builders that build it: `"resnet32"` (CIFAR ResNets,
            `build_resnet32_backbone`), `"resnet50"` or `"resnext50"`.
        num_stages: residual stages of the trunk.
        shared_stages: stages all experts share in the reference (stem +
            layer1 for the CIFAR ResNets, + layer2 for the others).
        builder_kwargs: `((name, value), ...)` the family's builders get.
        input_size: the input side it needs, or None for any size.
    """

    family: str
    num_stages: int
    shared_stages: int
    builder_kwargs: tuple = ()
    input_size: int = None


ARCHITECTURES = {
    "resnet32": ArchitectureSpec("resnet32", 3, 1),
    # ResNet-8, one block per stage: not a paper setting; for smoke tests
    # and quick looks at a pipeline.
    "resnet8": ArchitectureSpec("resnet32", 3, 1, (("blocks_per_stage", 1),)),
    "resnet50": ArchitectureSpec("resnet50", 4, 2),
    # The reference pools it with a fixed 7x7 window: 224x224 inputs only.
    "resnext50": ArchitectureSpec("resnext50", 4, 2, input_size=224),
}
