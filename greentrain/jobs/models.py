"""The paper's classification models: torchvision ResNets with the CIFAR stem.

``build_model("resnet18" | "resnet26" | "resnet50", num_classes=..., in_channels=...)`` returns
a ``torchvision.models.resnet.ResNet`` (no weights, nothing downloaded):

- resnet18: BasicBlock, layers (2, 2, 2, 2); resnet26: BasicBlock, (2, 3, 5, 2) (the paper's
  FLOPs-matched baseline for Table 7); resnet50: Bottleneck, (3, 4, 6, 3).
- ``stem="cifar"`` (the paper's choice at every input size, MNIST 28x28 to ImageNet 224x224):
  ``conv1`` is a 3x3 stride-1 padding-1 convolution without bias and the max-pool is removed
  (``nn.Identity``), so a 32x32 input reaches layer4 at 4x4. ``stem="imagenet"``: torchvision's
  7x7 stride-2 ``conv1`` and 3x3 stride-2 max-pool.
- ``in_channels`` comes from the data (1 for MNIST/FashionMNIST).
- Initialization is Kaiming (He et al. 2015), as the paper states: torchvision's ``ResNet``
  already initializes every ``nn.Conv2d`` with ``kaiming_normal_(mode="fan_out",
  nonlinearity="relu")`` and BatchNorm with weight 1 / bias 0; the replaced ``conv1`` gets the
  same ``kaiming_normal_`` call here. The final ``nn.Linear`` keeps PyTorch's default init.
"""

from __future__ import annotations

from torch import nn

from greentrain.errors import ConfigError

MODEL_NAMES = ("resnet18", "resnet26", "resnet50")
STEMS = ("cifar", "imagenet")

_SPECS = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet26": ("basic", (2, 3, 5, 2)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
}


def build_model(
    name: str, *, num_classes: int, in_channels: int = 3, stem: str = "cifar"
) -> nn.Module:
    """Build a randomly initialized ResNet (see the module docstring).

    Raises ``ConfigError`` for an unknown name or stem or a non-positive count. Build under
    ``with torch.device("meta"):`` to get the architecture without allocating weights.
    """
    from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

    if name not in _SPECS:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    if stem not in STEMS:
        raise ConfigError(f"unknown stem {stem!r}; choose 'cifar' or 'imagenet'")
    for label, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{label} must be a positive integer, got {value!r}")
    block_kind, layers = _SPECS[name]
    block = BasicBlock if block_kind == "basic" else Bottleneck
    model = ResNet(block, list(layers), num_classes=num_classes)
    if stem == "cifar":
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    return model
