"""K independent fits in one loop: their networks fused into one (`dip.nets.fused`), one forward
and one backward pass a step for all of them.

Each member keeps what its own fit (`dip.fit.fit`) would keep: its weights (its group of the
fused network), input z and input noise generator, target, operator and loss, its Adam moments,
step count and learning rate, its running average, its backtracking (a bad step of one member
undoes that member's step only) and its callbacks, hence its own stop: a member that has stopped
stops changing while the others go on. Every member gets the result of its own fit, to float
rounding (tests).

>>> import torch
>>> from dip.fit import FitConfig
>>> from dip.nets import SkipSpec
>>> spec = SkipSpec(channels_down=(8,) * 2, channels_up=(8,) * 2, channels_skip=(4,) * 2)
>>> members = [
...     Member(spec.build(4, 3), torch.rand(1, 4, 16, 16) * 0.1, torch.rand(1, 3, 16, 16), lambda x: x,
...            torch.Generator().manual_seed(k))
...     for k in range(3)
... ]
>>> results = fit_batch(members, FitConfig(steps=5))
>>> [r.steps_run for r in results], tuple(results[0].image.shape)
([5, 5, 5], (1, 3, 16, 16))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .accel import Acceleration
from .fit import Callback, FitConfig, FitResult, FitState, finish, fit, full_precision, mse, update_ema
from .nets.fused import fuse


@dataclass
class Member:
    """One problem of a batch: what `dip.fit.fit` takes, apart from the config all share."""

    net: nn.Module
    z: torch.Tensor  # (1, C, H, W): every member's z has one shape
    target: torch.Tensor
    operator: Callable[[torch.Tensor], torch.Tensor]
    generator: torch.Generator  # the input noise's
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = mse
    crop: Callable[[torch.Tensor], torch.Tensor] = field(default=lambda x: x)
    callbacks: Sequence[Callback] = ()


def _rows(tensor: torch.Tensor, k: int) -> torch.Tensor:
    """`tensor` (first dimension K * n, member after member) as (K, n, ...), a view in any layout."""
    return tensor.unflatten(0, (k, -1))


def _per_member(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A (K,) tensor shaped to broadcast over `_rows(like)`."""
    return values.view(-1, *([1] * like.dim()))


class _Adam:
    """Adam over fused weights (each tensor's first dimension holds the members one after another)
    with a learning rate, a step count and an on/off switch per member; torch's Adam has one
    learning rate per tensor. Same arithmetic as torch's."""

    def __init__(self, params: list[nn.Parameter], k: int, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        device = params[0].device
        self.params, self.k, self.betas, self.eps = params, k, betas, eps
        self.lr = torch.full((k,), lr, dtype=torch.float64, device=device)
        self.steps = torch.zeros(k, dtype=torch.float64, device=device)
        self.moments = [torch.zeros_like(p) for p in params]
        self.squares = [torch.zeros_like(p) for p in params]

    def state(self) -> list[torch.Tensor]:
        return self.moments + self.squares

    @torch.no_grad()
    def step(self, apply: torch.Tensor) -> None:
        """One Adam step for the members where `apply` (bool, (K,)) is set; the others keep
        their weights and moments."""
        beta1, beta2 = self.betas
        self.steps += apply
        steps = self.steps.clamp(min=1)
        dtype = self.params[0].dtype
        step_size = (self.lr / (1 - beta1**steps) * apply).to(dtype)
        root_correction = torch.sqrt(1 - beta2**steps).to(dtype)
        for param, moment, square in zip(self.params, self.moments, self.squares):
            if param.grad is None:
                continue
            k, grad = self.k, _rows(param.grad, self.k)
            on = _per_member(apply, grad[0])
            m, v, p = _rows(moment, k), _rows(square, k), _rows(param, k)
            m.copy_(torch.where(on, m.lerp(grad, 1 - beta1), m))
            v.copy_(torch.where(on, v * beta2 + (1 - beta2) * grad * grad, v))
            denom = v.sqrt() / _per_member(root_correction, grad[0]) + self.eps
            p.sub_(_per_member(step_size, grad[0]) * m / denom)


@torch.no_grad()
def copy_members(sources: list[torch.Tensor], targets: list[torch.Tensor], members: torch.Tensor, k: int) -> None:
    """Copy each source into its target for the members set in `members` (bool, (K,)) only."""
    for source, target in zip(sources, targets):
        rows = _rows(target, k)
        rows.copy_(torch.where(_per_member(members, rows[0]), _rows(source, k), rows))


class _Undo:
    """Each member's last good weights and Adam state, to undo that member's bad step."""

    def __init__(self, net: nn.Module, adam: _Adam):
        k = adam.k
        weights = [p.data for p in net.parameters()]
        buffers = [b for b in net.buffers() if b.dim() and b.shape[0] % k == 0]
        self.live = weights + buffers + adam.state()
        self.saved = [t.clone() for t in self.live]
        self.adam, self.saved_steps = adam, adam.steps.clone()
        self.loss = [math.inf] * k
        self.taken = [False] * k

    @torch.no_grad()
    def _copy(self, sources: list[torch.Tensor], targets: list[torch.Tensor], members: torch.Tensor) -> None:
        if bool(members.all()):
            torch._foreach_copy_(targets, sources)
            return
        copy_members(sources, targets, members, self.adam.k)

    def save(self, members: torch.Tensor, losses: dict[int, float]) -> None:
        self._copy(self.live, self.saved, members)
        self.saved_steps = torch.where(members, self.adam.steps, self.saved_steps)
        for index, loss in losses.items():
            self.loss[index], self.taken[index] = loss, True

    def restore(self, members: torch.Tensor) -> None:
        self._copy(self.saved, self.live, members)
        self.adam.steps = torch.where(members, self.saved_steps, self.adam.steps)


def fit_batch(
    members: Sequence[Member], config: FitConfig, acceleration: Acceleration = Acceleration()
) -> list[FitResult]:
    """Fit every member as `dip.fit.fit` would fit it alone, in one loop; one result each.

    All networks share an architecture, all inputs a shape. One member runs through
    `dip.fit.fit` itself; fp16 (loss scaling per member is not supported) runs the members one
    after another; with the CUDA graph, `dip.graphed` runs them.
    """
    if acceleration.cuda_graph:
        from .graphed import fit_on_device

        return fit_on_device(members, config, acceleration)
    if len(members) == 1 or acceleration.precision == "fp16":
        return [
            fit(
                m.net,
                m.z,
                m.target,
                m.operator,
                config,
                loss_fn=m.loss_fn,
                crop=m.crop,
                generator=m.generator,
                callbacks=m.callbacks,
                acceleration=acceleration,
            )
            for m in members
        ]
    device = members[0].z.device
    with acceleration.arithmetic(device):
        return _fit_batch(members, config, acceleration)


def _fit_batch(members: Sequence[Member], config: FitConfig, acceleration: Acceleration) -> list[FitResult]:
    k, device = len(members), members[0].z.device
    net = fuse([m.net for m in members])
    forward, z = acceleration.prepare(net, torch.cat([m.z for m in members], dim=1))
    adam = _Adam(list(net.parameters()), k, config.lr)
    undo = _Undo(net, adam) if config.backtrack_db is not None else None
    states = [FitState(net, None, config, m.z, m.generator, callbacks=list(m.callbacks)) for m in members]
    jump = 10 ** (config.backtrack_db / 10) if config.backtrack_db is not None else math.inf
    noises = [torch.zeros_like(m.z, memory_format=torch.contiguous_format) for m in members]
    active = [True] * k
    net.train()
    for state in states:
        for callback in state.callbacks:
            callback.on_start(state)
    while any(active):
        live = [i for i in range(k) if active[i]]
        net_input = z
        if config.reg_noise_std > 0:
            for i in live:
                noises[i].normal_(generator=members[i].generator)
            net_input = z + torch.cat(noises, dim=1) * config.reg_noise_std
        with acceleration.autocast(device):
            outputs = full_precision(forward(net_input)).chunk(k, dim=1)
        crops = {i: members[i].crop(outputs[i]) for i in live}
        losses = {i: members[i].loss_fn(members[i].operator(crops[i]), members[i].target) for i in live}
        values = dict(zip(live, torch.stack(list(losses.values())).tolist()))  # the step's one sync
        good, bad = _judge(states, values, undo, jump)
        if good:
            sum(losses[i] for i in good).backward()
            good_mask = _mask(good, k, device)
            if undo is not None:
                undo.save(good_mask, {i: values[i] for i in good})
            if bad:
                undo.restore(_mask(bad, k, device))
            adam.step(good_mask)
            net.zero_grad(set_to_none=True)
        elif bad:
            undo.restore(_mask(bad, k, device))
        for i in bad:
            adam.lr[i] *= config.backtrack_lr_factor
        for i in good:
            states[i].loss, states[i].output = values[i], crops[i].detach()
            update_ema(states[i])
        for i in live:
            for callback in states[i].callbacks:
                callback.on_step(states[i])
            active[i] = states[i].step < config.steps and not states[i].stop
    return [finish(state) for state in states]


def _judge(
    states: list[FitState], values: dict[int, float], undo: _Undo | None, jump: float
) -> tuple[list[int], list[int]]:
    """Count the step for each live member and sort them: good steps are applied, bad ones undone
    (a loss that jumped, or is not finite, after a good step)."""
    good, bad = [], []
    for i, value in values.items():
        state = states[i]
        state.step += 1
        last = undo.loss[i] if undo is not None else math.inf
        state.backtracked = (not math.isfinite(value) or value > last * jump) and undo is not None and undo.taken[i]
        if state.backtracked:
            state.backtracks += 1
            bad.append(i)
        elif not math.isfinite(value):
            raise FloatingPointError("the loss is not finite at the first step: check the inputs")
        else:
            good.append(i)
    return good, bad


def _mask(indices: list[int], k: int, device: torch.device) -> torch.Tensor:
    mask = torch.zeros(k, dtype=torch.bool)
    mask[indices] = True
    return mask.to(device)
