"""The fitting step without a host round trip, replayed as a CUDA graph.

On a GPU a step of the plain loop (`dip.fit.fit`) is mostly fixed cost: a couple of hundred
kernel launches from Python and one host synchronisation (the loss is read to decide
backtracking). Here every decision of a step is taken on the device: whether the step is bad
(the loss jumped, or is not finite), undoing it (weights, BatchNorm statistics and Adam state go
back to the last good step), the learning rate's cut, which members of a batch move. The host
reads the losses once every `sync_every` steps. On CUDA the step, fixed in shape, is captured
once as a CUDA graph and then replayed: one launch a step.

Callbacks see every step as in the plain loop, in order, after each group of `sync_every` steps:
its loss, its output, the running average, backtracking. Early stopping and every result are
therefore the plain loop's (to float rounding: Adam's arithmetic is `dip.batched`'s, not the
fused kernel's). What differs: a fit that a callback stops at step t has taken up to
`sync_every - 1` more steps on the device, thrown away; its result is step t's. Checkpoints
(which save the network as it is now) need the plain loop.

>>> import torch
>>> from dip.batched import Member
>>> from dip.fit import FitConfig
>>> from dip.nets import SkipSpec
>>> spec = SkipSpec(channels_down=(8,) * 2, channels_up=(8,) * 2, channels_skip=(4,) * 2)
>>> member = Member(spec.build(4, 3), torch.rand(1, 4, 16, 16) * 0.1, torch.rand(1, 3, 16, 16), lambda x: x,
...                 torch.Generator().manual_seed(0))
>>> [result] = fit_on_device([member], FitConfig(steps=7), sync_every=3, capture=False)
>>> result.steps_run, tuple(result.image.shape)
(7, (1, 3, 16, 16))
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from .accel import Acceleration
from .batched import Member, Roster, _Adam, _Undo, copy_members
from .errors import DipError
from .fit import FitConfig, FitResult, FitState, full_precision, raised_bar, update_ema

log = logging.getLogger(__name__)

SYNC_EVERY = 25  # steps between reads of the losses: a stop comes at most this many steps late
WARMUP = 3  # plain steps before capture (cuDNN picks its kernels; lazily made state exists)


class _DeviceUndo(_Undo):
    """Each member's last good weights, BatchNorm statistics and Adam state, saved and put back
    by masks on the device (no host decision): `dip.batched`'s undo with its losses on the device."""

    def __init__(self, net: nn.Module, adam: _Adam):
        super().__init__(net, adam)
        device = adam.steps.device
        self.mean = torch.full((adam.k,), math.inf, device=device)
        self.bar = torch.full((adam.k,), math.inf, device=device)
        self.taken = torch.zeros(adam.k, dtype=torch.bool, device=device)

    def _copy(self, sources: list[torch.Tensor], targets: list[torch.Tensor], members: torch.Tensor) -> None:
        copy_members(sources, targets, members, self.adam.k)

    def save(self, members: torch.Tensor, losses: torch.Tensor) -> None:
        self._copy(self.live, self.saved, members)
        self.saved_steps.copy_(torch.where(members, self.adam.steps, self.saved_steps))
        mean, bar = raised_bar(self.mean, losses.detach())
        self.mean.copy_(torch.where(members, mean, self.mean))
        self.bar.copy_(torch.where(members, bar, self.bar))
        self.taken |= members

    def restore(self, members: torch.Tensor) -> None:
        self._copy(self.saved, self.live, members)
        self.adam.steps.copy_(torch.where(members, self.saved_steps, self.adam.steps))


class _Step:
    """One step of every member, on fixed buffers: the noise is written into `noise` before each
    call; the call leaves the losses, the bad-step flags and the cropped outputs in `losses`,
    `bad` and `outputs`. `fused`: the members' network, Adam and undo state (`dip.batched.regroup`)."""

    def __init__(
        self,
        members: Sequence[Member],
        config: FitConfig,
        acceleration: Acceleration,
        fused: tuple[nn.Module, _Adam, _DeviceUndo | None],
    ):
        self.members, self.config, self.acceleration = members, config, acceleration
        self.k = k = len(members)
        self.net, self.adam, self.undo = fused
        self.forward, self.z = acceleration.prepare(self.net, torch.cat([m.z for m in members], dim=1))
        device = self.z.device
        self.jump = 10 ** (config.backtrack_db / 10) if config.backtrack_db is not None else math.inf
        self.noise = torch.zeros_like(self.z, memory_format=torch.contiguous_format)
        self.member_noise = list(self.noise.chunk(k, dim=1))
        self.active = torch.ones(k, dtype=torch.bool, device=device)
        self.cut = torch.tensor(config.backtrack_lr_factor, dtype=torch.float64, device=device)
        self.losses: torch.Tensor | None = None
        self.bad: torch.Tensor | None = None
        self.outputs: list[torch.Tensor] = []

    def __call__(self) -> None:
        config, members = self.config, self.members
        net_input = self.z + self.noise * config.reg_noise_std if config.reg_noise_std > 0 else self.z
        with self.acceleration.autocast(self.z.device, cache=False):
            outputs = full_precision(self.forward(net_input)).chunk(self.k, dim=1)
        crops = [m.crop(out) for m, out in zip(members, outputs)]
        losses = torch.stack([m.loss_fn(m.operator(c), m.target) for m, c in zip(members, crops)])
        finite = torch.isfinite(losses)
        if self.undo is None:
            bad = torch.zeros_like(finite)
        else:
            bad = self.active & self.undo.taken & (~finite | (losses > self.undo.bar * self.jump))
        good = self.active & finite & ~bad
        torch.where(good, losses, torch.zeros_like(losses)).sum().backward()
        with torch.no_grad():
            if self.undo is not None:
                self.undo.save(good, losses)
                self.undo.restore(bad)
            self.adam.step(good)
            self.adam.lr.mul_(torch.where(bad, self.cut, torch.ones_like(self.cut)))
        self.losses, self.bad = losses.detach(), bad
        self.outputs = [c.detach() for c in crops]


class _Replay:
    """The step captured as a CUDA graph after `WARMUP` plain steps; a plain call where there is
    no CUDA, or where the capture fails (an operator that cannot be captured)."""

    def __init__(self, step: _Step, capture: bool):
        self.step, self.capture, self.calls = step, capture, 0
        self.graph: torch.cuda.CUDAGraph | None = None

    def __call__(self) -> None:
        step = self.step
        if self.graph is not None:
            self.graph.replay()
            return
        self.calls += 1
        if not self.capture or self.calls <= WARMUP:
            self._plain()
            return
        step.net.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                step()
        except RuntimeError as error:
            log.warning("the step could not be captured as a CUDA graph (%s): it runs uncaptured", error)
            self.capture = False
            torch.cuda.synchronize()
            self._plain()
            return
        self.graph = graph
        graph.replay()

    def _plain(self) -> None:
        step = self.step
        if self.capture:  # warm-up on a side stream, as torch's capture recipe asks
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                step.net.zero_grad(set_to_none=True)
                step()
            torch.cuda.current_stream().wait_stream(side)
        else:
            step.net.zero_grad(set_to_none=True)
            step()


def fit_on_device(
    members: Sequence[Member],
    config: FitConfig,
    acceleration: Acceleration = Acceleration(),
    *,
    sync_every: int = SYNC_EVERY,
    capture: bool | None = None,
    slots: int | None = None,
    on_result: Callable[[int, FitResult], None] | None = None,
) -> list[FitResult]:
    """Fit every member as `dip.fit.fit` would fit it alone, each step decided on the device;
    one result each. `capture` (default: on CUDA) replays the step as a CUDA graph. `slots` and
    `on_result`: as `dip.batched.fit_batch`'s."""
    from .callbacks import Checkpoint

    if any(isinstance(c, Checkpoint) for m in members for c in m.callbacks):
        raise DipError("checkpoints need the plain fitting loop: leave out the CUDA graph")
    if acceleration.precision == "fp16":
        raise DipError("fp16 (loss scaling) needs the plain fitting loop: use bf16 with the CUDA graph")
    device = members[0].z.device
    capture = device.type == "cuda" if capture is None else capture
    with acceleration.arithmetic(device):
        return _fit(members, config, acceleration, max(1, sync_every), capture, slots, on_result)


def _fit(
    members: Sequence[Member],
    config: FitConfig,
    acceleration: Acceleration,
    sync_every: int,
    capture: bool,
    slots: int | None,
    on_result: Callable[[int, FitResult], None] | None,
) -> list[FitResult]:
    roster = Roster(members, config, acceleration, slots, _DeviceUndo, on_result)
    while not roster.done():
        if roster.refresh():  # the step of the new network, captured anew
            step = _Step([members[i] for i in roster.order], config, acceleration, roster.fused)
            replay = _Replay(step, capture)
        order, live, here = roster.order, roster.live(), roster.here()
        count = min(sync_every, config.steps - max(here[p].step for p in live))
        taken = []
        for _ in range(count):
            if config.reg_noise_std > 0:
                for p in live:
                    step.member_noise[p].normal_(generator=step.members[p].generator)
            replay()
            taken.append((step.losses.clone(), step.bad.clone(), [out.clone() for out in step.outputs]))
        losses = torch.stack([t[0] for t in taken]).tolist()  # the one sync of `count` steps
        bads = torch.stack([t[1] for t in taken]).tolist()
        for j, (_, _, outputs) in enumerate(taken):
            for p in live:
                if roster.results[order[p]] is None:
                    _account(here[p], losses[j][p], bads[j][p], outputs[p])
                    if here[p].step >= config.steps or here[p].stop:
                        roster.end(p)
        if len(roster.live()) < len(live):
            step.active.copy_(torch.tensor([roster.results[i] is None for i in order]))
    return roster.results


def _account(state: FitState, loss: float, bad: bool, output: torch.Tensor) -> None:
    """Tell one member's state and callbacks what its step did, as the plain loop would."""
    state.step += 1
    state.backtracked = bad
    if bad:
        state.backtracks += 1
    elif not math.isfinite(loss):
        raise FloatingPointError("the loss is not finite at the first step: check the inputs")
    else:
        state.loss, state.output = loss, output
        update_ema(state)
    for callback in state.callbacks:
        callback.on_step(state)
