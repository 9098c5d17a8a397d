"""The model zoo: torchvision ResNets with the paper's CIFAR stem."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from greentrain.errors import ConfigError
from greentrain.jobs.models import MODEL_NAMES, build_model
from ssprop import flops as F


def blocks(model: nn.Module) -> list[int]:
    return [len(getattr(model, f"layer{i}")) for i in range(1, 5)]


@pytest.mark.parametrize(
    "name, block, layers",
    [
        ("resnet18", BasicBlock, [2, 2, 2, 2]),
        ("resnet26", BasicBlock, [2, 3, 5, 2]),
        ("resnet50", Bottleneck, [3, 4, 6, 3]),
    ],
)
def test_each_name_builds_the_torchvision_resnet_with_its_blocks(name, block, layers):
    with torch.device("meta"):
        model = build_model(name, num_classes=7)
    assert isinstance(model, ResNet) and name in MODEL_NAMES
    assert blocks(model) == layers and isinstance(model.layer1[0], block)
    assert model.fc.out_features == 7


def test_cifar_stem_is_a_3x3_stride1_conv_without_bias_and_no_maxpool():
    model = build_model("resnet18", num_classes=10, in_channels=1)
    conv = model.conv1
    assert (conv.in_channels, conv.kernel_size, conv.stride, conv.padding) == (
        1,
        (3, 3),
        (1, 1),
        (1, 1),
    )
    assert conv.bias is None and isinstance(model.maxpool, nn.Identity)
    out = model(torch.randn(2, 1, 28, 28))  # MNIST-sized input, one channel
    assert out.shape == (2, 10)


def test_cifar_stem_keeps_32x32_resolution_until_layer2():
    mf = F.analyze(build_model("resnet18", num_classes=10), (2, 3, 32, 32))
    rows = {r.name: r for r in mf.layers}
    assert rows["conv1"].output_shape == (2, 64, 32, 32)
    assert rows["layer1.0.conv1"].output_shape == (2, 64, 32, 32)
    assert rows["layer4.1.conv2"].output_shape == (2, 512, 4, 4)


def test_imagenet_stem_is_torchvisions_and_matches_its_published_macs():
    with torch.device("meta"):
        model = build_model("resnet50", num_classes=1000, stem="imagenet")
    assert model.conv1.kernel_size == (7, 7) and isinstance(model.maxpool, nn.MaxPool2d)
    mf = F.analyze(model, (1, 3, 224, 224))
    # Eq. 6 GEMM part = 4 * MACs (two backward GEMMs, 2 FLOPs per MAC); torchvision's
    # documented ResNet-50 cost is 4.09 G(MAC)
    macs = sum(r.gemm_flops for r in mf.layers) / 4
    assert macs == pytest.approx(4.09e9, rel=0.01)


def test_convs_get_kaiming_fan_out_init_including_the_replaced_stem():
    torch.manual_seed(0)
    model = build_model("resnet26", num_classes=10)
    for conv in (model.conv1, model.layer3[4].conv2):
        fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
        expected = (2.0 / fan_out) ** 0.5
        assert conv.weight.std().item() == pytest.approx(expected, rel=0.15)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "vgg16"}, "unknown model 'vgg16'"),
        ({"stem": "tiny"}, "unknown stem"),
        ({"num_classes": 0}, "num_classes must be a positive integer"),
        ({"in_channels": -1}, "in_channels must be a positive integer"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs, match):
    args = {"name": "resnet18", "num_classes": 10, **kwargs}
    with pytest.raises(ConfigError, match=match):
        build_model(args.pop("name"), **args)
