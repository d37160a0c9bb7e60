"""K networks fused into one compute exactly what each computes alone, gradients included
(in float64, where the grouped convolutions' other summation order cannot hide a mistake)."""

import pytest
import torch

from dip.nets.fused import fuse
from dip.presets import get_preset


@pytest.mark.parametrize("task, preset", [("denoise", "default"), ("deblock", "default"), ("inpaint", "default")])
def test_fused_networks_match_each_network_alone(task, preset):
    spec = get_preset(task, preset)
    torch.manual_seed(0)
    nets = [spec.net.build(spec.input_channels, 3).double() for _ in range(3)]
    z = torch.rand(3, 1, spec.input_channels, 64, 64, dtype=torch.float64)
    fused = fuse(nets)
    together = fused(z.transpose(0, 1).reshape(1, -1, 64, 64)).reshape(3, 3, 64, 64)
    alone = torch.cat([net(zk) for net, zk in zip(nets, z)])
    assert torch.allclose(together, alone, rtol=1e-10, atol=1e-12)
    together.square().sum().backward()
    alone.square().sum().backward()
    for name, fused_weight in fused.named_parameters():
        stacked = torch.cat([dict(net.named_parameters())[name].grad for net in nets])  # groups on dim 0
        assert torch.allclose(fused_weight.grad, stacked, rtol=1e-8, atol=1e-10), name
    assert sum(p.numel() for p in fused.parameters()) == 3 * sum(p.numel() for p in nets[0].parameters())
