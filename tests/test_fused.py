"""K networks fused into one compute exactly what each computes alone, gradients included
(in float64, where the grouped convolutions' other summation order cannot hide a mistake)."""

import pytest
import torch

from dip.nets.fused import combine, fuse
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


def test_selecting_members_of_a_fused_network_is_fusing_them_alone():
    """`combine` keeps the chosen members' weights and BatchNorm statistics: after a training step
    of the fused network, members 2 and 0 (in that order) compute what those two networks fused
    alone compute."""
    spec = get_preset("denoise", "default")
    torch.manual_seed(0)
    nets = [spec.net.build(spec.input_channels, 3).double() for _ in range(3)]
    fused = fuse(nets)
    z = torch.rand(1, 3 * spec.input_channels, 64, 64, dtype=torch.float64)
    fused(z)  # training mode: the running statistics move
    narrowed = combine([(fused, 3, [2, 0])])
    state = fused.state_dict()
    for j in (2, 0):  # each network as it is now inside the fused one
        for name, value in nets[j].state_dict().items():
            value.copy_(state[name].unflatten(0, (3, -1))[j] if value.dim() else state[name])
    alone = fuse([nets[2], nets[0]])
    assert sum(p.numel() for p in narrowed.parameters()) == 2 * sum(p.numel() for p in nets[0].parameters())
    for (name, mine), theirs in zip(narrowed.state_dict().items(), alone.state_dict().values()):
        assert torch.equal(mine, theirs), name
    inputs = z.unflatten(1, (3, -1))[:, [2, 0]].flatten(1, 2)
    assert torch.equal(narrowed.eval()(inputs), alone.eval()(inputs))
