"""K independent fits in one loop: their networks fused into one (`dip.nets.fused`), one forward
and one backward pass a step for all of them.

Each member keeps what its own fit (`dip.fit.fit`) would keep: its weights (its group of the
fused network), input z and input noise generator, target, operator and loss, its Adam moments,
step count and learning rate, its running average, its backtracking (a bad step of one member
undoes that member's step only) and its callbacks, hence its own stop: a member that has stopped
stops changing while the others go on, and the batch runs on in a network of the members still
fitting (`narrows`), so a batch costs what its live members cost. Every member gets the result of
its own fit, to float rounding (tests).

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

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .accel import Acceleration
from .fit import Callback, FitConfig, FitResult, FitState, finish, fit, full_precision, mse, update_ema
from .nets.fused import fuse, pick, select


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

    def narrow(self, params: list[nn.Parameter], keep: torch.Tensor) -> _Adam:
        """This state for the members `keep` (indices, on the device) only, over `params` (the
        network of those members)."""
        adam = copy.copy(self)
        adam.params, adam.k = params, len(keep)
        adam.lr, adam.steps = self.lr[keep], self.steps[keep]
        adam.moments = [pick(m, self.k, keep) for m in self.moments]
        adam.squares = [pick(v, self.k, keep) for v in self.squares]
        return adam

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
        self.live = _member_tensors(net, adam)
        self.saved = [t.clone() for t in self.live]
        self.adam, self.saved_steps = adam, adam.steps.clone()
        self.loss = [math.inf] * k
        self.taken = [False] * k

    def narrow(self, net: nn.Module, adam: _Adam, keep: list[int]) -> _Undo:
        """This state for the members `keep` only, undoing into `net` and `adam` (theirs)."""
        index = torch.tensor(keep, device=self.saved_steps.device)
        undo = copy.copy(self)
        undo.adam, undo.live = adam, _member_tensors(net, adam)
        undo.saved = [pick(t, self.adam.k, index) for t in self.saved]
        if [t.shape for t in undo.saved] != [t.shape for t in undo.live]:
            raise RuntimeError("the network has state that is not its members' side by side")
        undo.saved_steps = self.saved_steps[index]
        undo.loss, undo.taken = _take(self.loss, keep, index), _take(self.taken, keep, index)
        return undo

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


def _member_tensors(net: nn.Module, adam: _Adam) -> list[torch.Tensor]:
    """What a member's step changes: weights, BatchNorm statistics, Adam state (members' rows side
    by side along the first dimension)."""
    weights = [p.data for p in net.parameters()]
    buffers = [b for b in net.buffers() if b.dim() and b.shape[0] % adam.k == 0]
    return weights + buffers + adam.state()


def _take(values: list | torch.Tensor, keep: list[int], index: torch.Tensor) -> list | torch.Tensor:
    return values[index] if isinstance(values, torch.Tensor) else [values[i] for i in keep]


def start(members: Sequence[Member], config: FitConfig, undo: type[_Undo] | None = None):
    """The fused network of `members`, its Adam, and its undo state (of class `undo`; None
    without backtracking): what a batch fits."""
    net = fuse([m.net for m in members])
    adam = _Adam(list(net.parameters()), len(members), config.lr)
    kind = undo or _Undo
    return net, adam, (kind(net, adam) if config.backtrack_db is not None else None)


def narrows(acceleration: Acceleration, size: int, live: int) -> bool:
    """Whether a batch of `size` members of which `live` still fit runs on in a network of those
    only: always, as that costs a copy of their weights, but under torch.compile (which compiles
    each new network anew) only once at most half are left."""
    return live < size and (not acceleration.compile or 2 * live <= size)


def narrow(net: nn.Module, adam: _Adam, undo: _Undo | None, keep: list[int]):
    """The network, Adam and undo state of the members at positions `keep` only."""
    smaller = select(net, adam.k, keep)
    smaller.train(net.training)
    index = torch.tensor(keep, device=adam.lr.device)
    adam = adam.narrow(list(smaller.parameters()), index)
    return smaller, adam, (undo.narrow(smaller, adam, keep) if undo is not None else None)


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
    device = members[0].z.device
    net, adam, undo = start(members, config)
    order = list(range(len(members)))  # the members the network holds, in its order
    forward, z = acceleration.prepare(net, torch.cat([m.z for m in members], dim=1))
    states = [FitState(net, None, config, m.z, m.generator, callbacks=list(m.callbacks)) for m in members]
    jump = 10 ** (config.backtrack_db / 10) if config.backtrack_db is not None else math.inf
    noises = [torch.zeros_like(m.z, memory_format=torch.contiguous_format) for m in members]
    active = [True] * len(members)
    net.train()
    for state in states:
        for callback in state.callbacks:
            callback.on_start(state)
    while any(active):
        live = [p for p, i in enumerate(order) if active[i]]  # positions in the network
        if narrows(acceleration, len(order), len(live)):
            net, adam, undo = narrow(net, adam, undo, live)
            order = [order[p] for p in live]
            forward, z = acceleration.prepare(net, torch.cat([members[i].z for i in order], dim=1))
            for i in order:
                states[i].net = net
            live = list(range(len(order)))
        k, here, held = len(order), [states[i] for i in order], [members[i] for i in order]
        net_input = z
        if config.reg_noise_std > 0:
            for p in live:
                noises[order[p]].normal_(generator=held[p].generator)
            net_input = z + torch.cat([noises[i] for i in order], dim=1) * config.reg_noise_std
        with acceleration.autocast(device):
            outputs = full_precision(forward(net_input)).chunk(k, dim=1)
        crops = {p: held[p].crop(outputs[p]) for p in live}
        losses = {p: held[p].loss_fn(held[p].operator(crops[p]), held[p].target) for p in live}
        values = dict(zip(live, torch.stack(list(losses.values())).tolist()))  # the step's one sync
        good, bad = _judge(here, values, undo, jump)
        if good:
            sum(losses[p] for p in good).backward()
            good_mask = _mask(good, k, device)
            if undo is not None:
                undo.save(good_mask, {p: values[p] for p in good})
            if bad:
                undo.restore(_mask(bad, k, device))
            adam.step(good_mask)
            net.zero_grad(set_to_none=True)
        elif bad:
            undo.restore(_mask(bad, k, device))
        for p in bad:
            adam.lr[p] *= config.backtrack_lr_factor
        for p in good:
            here[p].loss, here[p].output = values[p], crops[p].detach()
            update_ema(here[p])
        for p in live:
            for callback in here[p].callbacks:
                callback.on_step(here[p])
            active[order[p]] = here[p].step < config.steps and not here[p].stop
    return [finish(state) for state in states]


def _judge(
    states: list[FitState], values: dict[int, float], undo: _Undo | None, jump: float
) -> tuple[list[int], list[int]]:
    """Count the step for each live member (`values`: loss by position in the network, as
    `states`) and sort them: good steps are applied, bad ones undone (a loss that jumped, or is
    not finite, after a good step)."""
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
