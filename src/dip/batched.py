"""K independent fits in one loop: their networks fused into one (`dip.nets.fused`), one forward
and one backward pass a step for all of them.

Each member keeps what its own fit (`dip.fit.fit`) would keep: its weights (its group of the
fused network), input z and input noise generator, target, operator and loss, its Adam moments,
step count and learning rate, its running average, its backtracking (a bad step of one member
undoes that member's step only) and its callbacks, hence its own stop: a member that has stopped
stops changing while the others go on, and the batch runs on in a network of the members still
fitting (`narrows`), so a batch costs what its live members cost. With fewer places than members
(`slots`), a waiting member takes the place of one that stops (`Roster`). Every member gets the
result of its own fit, to float rounding (tests).

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
from .fit import Callback, FitConfig, FitResult, FitState, finish, fit, full_precision, mse, raised_bar, update_ema
from .nets.fused import combine


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
    def take(self, old: _Adam, keep: torch.Tensor) -> None:
        """Carry the members `keep` (indices, on the device) of `old` over as this state's first
        members; the others stay fresh."""
        n = len(keep)
        self.lr[:n], self.steps[:n] = old.lr[keep], old.steps[keep]
        for mine, theirs in zip(self.state(), old.state()):
            _rows(mine, self.k)[:n].copy_(_rows(theirs, old.k)[keep])

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
    """Each member's last good weights and Adam state, to undo that member's bad step, and the bar
    its next loss is judged against (`dip.fit.raised_bar`)."""

    def __init__(self, net: nn.Module, adam: _Adam):
        k = adam.k
        self.live = _member_tensors(net, adam)
        self.saved = [t.clone() for t in self.live]
        self.adam, self.saved_steps = adam, adam.steps.clone()
        self.mean, self.bar = [math.inf] * k, [math.inf] * k
        self.taken = [False] * k

    @torch.no_grad()
    def take(self, old: _Undo, keep: list[int]) -> None:
        """Carry the members `keep` of `old` over as this state's first members."""
        index, n = torch.tensor(keep, device=self.saved_steps.device), len(keep)
        for mine, theirs in zip(self.saved, old.saved):
            mine_rows, their_rows = _rows(mine, self.adam.k), _rows(theirs, old.adam.k)
            if mine_rows.shape[1:] != their_rows.shape[1:]:
                raise RuntimeError("the network has state that is not its members' side by side")
            mine_rows[:n].copy_(their_rows[index])
        self.saved_steps[:n] = old.saved_steps[index]
        for name in ("mean", "bar", "taken"):
            getattr(self, name)[:n] = _take(getattr(old, name), keep, index)

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
            self.mean[index], self.bar[index] = raised_bar(self.mean[index], loss)
            self.taken[index] = True

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


def narrows(acceleration: Acceleration, size: int, live: int) -> bool:
    """Whether a batch of `size` members of which `live` still fit runs on in a network of those
    (and of fits waiting for a place): in the plain loop at every stop, as that costs a copy of
    their weights; with the CUDA graph (captured anew, after a few uncaptured steps) once a
    quarter of the places are free; under torch.compile (which compiles each new network anew)
    once half are."""
    if acceleration.compile:
        return 2 * live <= size and live < size
    if acceleration.cuda_graph:
        return 4 * live <= 3 * size and live < size
    return live < size


def regroup(
    fused: tuple[nn.Module, _Adam, _Undo | None] | None,
    keep: list[int],
    joining: Sequence[Member],
    config: FitConfig,
    undo_kind: type[_Undo] = _Undo,
) -> tuple[nn.Module, _Adam, _Undo | None]:
    """The network, Adam and undo state (of class `undo_kind`; None without backtracking) of the
    members at positions `keep` of `fused` (None before the first), as they are, followed by the
    `joining` members, fresh: what a batch fits from here."""
    parts = [(m.net, 1, [0]) for m in joining]
    if fused is not None and keep:
        parts.insert(0, (fused[0], fused[1].k, keep))
    net = combine(parts)
    net.train()
    adam = _Adam(list(net.parameters()), len(keep) + len(joining), config.lr)
    undo = undo_kind(net, adam) if config.backtrack_db is not None else None
    if fused is not None and keep:
        adam.take(fused[1], torch.tensor(keep, device=adam.lr.device))
        if undo is not None:
            undo.take(fused[2], keep)
    return net, adam, undo


class Roster:
    """The members of a batch with `slots` places: which the fused network holds (`order`, by
    position), which wait for a place, and each member's state and, once it has stopped, result.
    `refresh` narrows the network to the members still fitting and lets waiting ones in; both
    loops (`fit_batch`, `dip.graphed`) keep their books here."""

    def __init__(
        self,
        members: Sequence[Member],
        config: FitConfig,
        acceleration: Acceleration,
        slots: int | None = None,
        undo_kind: type[_Undo] = _Undo,
        on_result: Callable[[int, FitResult], None] | None = None,
    ):
        self.members, self.config, self.acceleration, self.undo_kind = members, config, acceleration, undo_kind
        self.on_result = on_result
        self.slots = min(slots or len(members), len(members))
        self.waiting = list(range(len(members)))
        self.order: list[int] = []
        self.states: list[FitState | None] = [None] * len(members)
        self.results: list[FitResult | None] = [None] * len(members)
        self.fused: tuple[nn.Module, _Adam, _Undo | None] | None = None

    def live(self) -> list[int]:
        """The positions of the members still fitting."""
        return [p for p, i in enumerate(self.order) if self.results[i] is None]

    def done(self) -> bool:
        return not self.waiting and not self.live()

    def here(self) -> list[FitState]:
        """The states of the members the network holds, by position."""
        return [self.states[i] for i in self.order]

    def end(self, position: int) -> None:
        """The member at `position` has stopped: finish its fit (its callbacks end here)."""
        index = self.order[position]
        self.results[index] = finish(self.states[index])
        self._write_back(position, index)
        self.states[index].net = None  # a long queue must not keep every network it ran in
        if self.on_result is not None:
            self.on_result(index, self.results[index])

    def _write_back(self, position: int, index: int) -> None:
        """The member's own network takes the weights its fit ended with, as after `dip.fit.fit`
        (a tile's fit can then start the next tile's)."""
        net, adam, _ = self.fused
        with torch.no_grad():
            self.members[index].net.load_state_dict(combine([(net, adam.k, [position])]).state_dict())

    def refresh(self) -> bool:
        """Regroup where it pays (`narrows`, or the first group); True when the network changed."""
        live = self.live()
        if self.order and not narrows(self.acceleration, len(self.order), len(live)):
            return False
        joining = self.waiting[: self.slots - len(live)]
        del self.waiting[: len(joining)]
        self.fused = regroup(self.fused, live, [self.members[i] for i in joining], self.config, self.undo_kind)
        self.order = [self.order[p] for p in live] + joining
        net = self.fused[0]
        for index in self.order:
            if self.states[index] is not None:
                self.states[index].net = net
        for index in joining:
            member = self.members[index]
            state = FitState(net, None, self.config, member.z, member.generator, callbacks=list(member.callbacks))
            self.states[index] = state
            for callback in state.callbacks:
                callback.on_start(state)
        return True


def fit_batch(
    members: Sequence[Member],
    config: FitConfig,
    acceleration: Acceleration = Acceleration(),
    slots: int | None = None,
    on_result: Callable[[int, FitResult], None] | None = None,
) -> list[FitResult]:
    """Fit every member as `dip.fit.fit` would fit it alone, in one loop; one result each. As
    there, each member's network ends holding the weights its fit ended with.

    All networks share an architecture, all inputs a shape. At most `slots` members (default:
    all) fit at once; the others wait, and each takes the place of a fit that stops.
    `on_result(index, result)` hears of each fit as it ends (to keep it before the others end).
    One member (or one slot) runs through `dip.fit.fit` itself; fp16 (loss scaling per member is
    not supported) runs the members one after another; with the CUDA graph, `dip.graphed` runs them.
    """
    if acceleration.cuda_graph:
        from .graphed import fit_on_device

        return fit_on_device(members, config, acceleration, slots=slots, on_result=on_result)
    if len(members) == 1 or slots == 1 or acceleration.precision == "fp16":
        return [_fit_alone(index, m, config, acceleration, on_result) for index, m in enumerate(members)]
    device = members[0].z.device
    with acceleration.arithmetic(device):
        return _fit_batch(members, config, acceleration, slots, on_result)


def _fit_alone(
    index: int,
    member: Member,
    config: FitConfig,
    acceleration: Acceleration,
    on_result: Callable[[int, FitResult], None] | None,
) -> FitResult:
    result = fit(
        member.net,
        member.z,
        member.target,
        member.operator,
        config,
        loss_fn=member.loss_fn,
        crop=member.crop,
        generator=member.generator,
        callbacks=member.callbacks,
        acceleration=acceleration,
    )
    if on_result is not None:
        on_result(index, result)
    return result


def _fit_batch(
    members: Sequence[Member],
    config: FitConfig,
    acceleration: Acceleration,
    slots: int | None,
    on_result: Callable[[int, FitResult], None] | None,
) -> list[FitResult]:
    device = members[0].z.device
    roster = Roster(members, config, acceleration, slots, on_result=on_result)
    jump = 10 ** (config.backtrack_db / 10) if config.backtrack_db is not None else math.inf
    noises = [torch.zeros_like(m.z, memory_format=torch.contiguous_format) for m in members]
    while not roster.done():
        if roster.refresh():
            net, adam, undo = roster.fused
            forward, z = acceleration.prepare(net, torch.cat([members[i].z for i in roster.order], dim=1))
        order, live, here = roster.order, roster.live(), roster.here()
        k, held = len(order), [members[i] for i in order]
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
            if here[p].step >= config.steps or here[p].stop:
                roster.end(p)
    return roster.results


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
        bar = undo.bar[i] if undo is not None else math.inf
        state.backtracked = (not math.isfinite(value) or value > bar * jump) and undo is not None and undo.taken[i]
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
