import pytest
import torch

from dip.errors import DipError
from dip.nets import SkipSpec, count_parameters
from dip.presets import get_preset


@pytest.mark.parametrize(
    "task, name, expected",
    [
        ("denoise", "paper", 2_217_831),
        ("inpaint", "text", 3_002_627),
        ("inpaint", "blob", 2_157_955),
        ("flash", "paper", 2_184_307),
    ],
)
def test_paper_parameter_counts(task, name, expected):
    assert get_preset(task, name).parameters(3) == expected


def test_denoise_net_count_matches_builder_directly():
    net = SkipSpec(channels_down=(128,) * 5, channels_up=(128,) * 5, channels_skip=(4,) * 5).build(32, 3)
    assert count_parameters(net) == 2_217_831
    assert net.stride == 32


@pytest.mark.parametrize(
    "spec",
    [
        SkipSpec(channels_down=(8, 16), channels_up=(8, 16), channels_skip=(4, 0), downsample="avg", pad="zero"),
        SkipSpec(
            channels_down=(8, 16),
            channels_up=(8, 16),
            channels_skip=(0, 2),
            downsample="max",
            upsample=("nearest", "bilinear"),
            filter_down=(5, 3),
            filter_up=(3, 5),
            need1x1_up=False,
        ),
    ],
)
def test_variants_keep_size_and_range(spec):
    net = spec.build(3, 2)
    out = net(torch.rand(1, 3, 16, 24))
    assert out.shape == (1, 2, 16, 24)
    assert 0 <= out.min() and out.max() <= 1


def test_the_reference_codes_torch_can_be_matched():
    """The skip net as PyTorch 0.3 made it for the reference code: BatchNorm scales from U(0, 1)
    (ones since PyTorch 1.2), bilinear upsampling with aligned corners (not since 0.4); the same
    parameters otherwise."""
    from torch import nn

    from dip.bench.choice import variant

    plain, old = variant("denoise", "paper").net, variant("denoise", "paper+bn-uniform+corners").net
    torch.manual_seed(0)
    net = old.build(32, 3)
    scales = torch.cat([m.weight for m in net.modules() if isinstance(m, nn.BatchNorm2d)])
    assert count_parameters(net) == count_parameters(plain.build(32, 3)) == 2_217_831
    assert 0 <= scales.min() and scales.max() < 1 and abs(scales.mean() - 0.5) < 0.02 and scales.std() > 0.25
    assert {m.align_corners for m in net.modules() if isinstance(m, nn.Upsample)} == {True}
    assert {m.align_corners for m in plain.build(32, 3).modules() if isinstance(m, nn.Upsample)} == {False}
    assert old.describe().endswith("bilinear-corners, stride, reflection, BatchNorm scale uniform)")
    with pytest.raises(DipError, match="corners is a change of bilinear upsampling"):
        variant("inpaint", "text+corners")


def test_bad_spec_is_rejected():
    with pytest.raises(ValueError, match="same, non-zero length"):
        SkipSpec(channels_down=(8, 8), channels_up=(8,), channels_skip=(0, 0)).build(3, 3)
    with pytest.raises(ValueError, match="upsample"):
        SkipSpec(channels_down=(8,), channels_up=(8,), channels_skip=(0,), upsample="cubic").build(3, 3)
    with pytest.raises(ValueError, match="norm_init"):
        SkipSpec(channels_down=(8,), channels_up=(8,), channels_skip=(0,), norm_init="zeros").build(3, 3)


@pytest.mark.parametrize("name, stride", [("large-holes", 64), ("large-holes-unet", 32), ("large-holes-resnet", 1)])
def test_large_hole_comparison_nets_build_and_keep_size(name, stride):
    preset = get_preset("inpaint", name)
    net = preset.net.build(preset.input_channels, 3)
    assert preset.net.stride == stride == net.stride
    side = preset.net.min_size
    out = net(torch.rand(1, preset.input_channels, side, side + stride))
    assert out.shape == (1, 3, side, side + stride)


def test_unet_matches_reference_layout():
    # feature_scale 8 -> filters 8..128; one extra level; deconv up; InstanceNorm has no parameters
    from dip.nets import UNetSpec

    net = UNetSpec().build(1, 3)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [c.in_channels for c in convs] == [16, 32, 64, 128, 128]
    assert count_parameters(net) == 1_616_315
