"""The one fitting loop: Adam on ||A(f(z)) - y||^2, with callbacks for everything else.

Nothing here knows which task it runs: the task hands over a network, its input z, the
observation y and the operator A. Per step the input is re-perturbed (`reg_noise_std`), an
exponential moving average (EMA) of outputs is kept, and a step whose loss jumps (or is not
finite) is undone: weights and optimizer state go back to the last good step and the bad
gradient is never applied.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .accel import Acceleration

Loss = float | torch.Tensor  # one loss (the plain loop), or one per member of a batch (on the device)


class Callback:
    """Hooks into the loop, doing nothing by default; any of them may set `state.stop = True`."""

    def on_start(self, state: FitState) -> None:
        pass

    def on_step(self, state: FitState) -> None:
        pass

    def on_end(self, state: FitState) -> None:
        pass


@dataclass(frozen=True)
class FitConfig:
    """How to fit: plain data, normally taken from a preset."""

    steps: int = 3000
    lr: float = 0.01
    reg_noise_std: float = 0.0
    ema: float | None = 0.99  # weight of the running average; None to keep only the last output
    # The average's weight at step t is min(ema, (1 + t) / (ema_ramp + t)) when set: it spans about
    # the last 1/ema_ramp of the run, so a run that stops early does not return its first outputs.
    ema_ramp: float | None = None
    backtrack_db: float | None = 5.0  # undo a step whose loss rises more than this (in dB) above the bar (`raised_bar`)
    backtrack_lr_factor: float = 0.5  # lr shrinks after each undone step, so the retry differs


@dataclass
class FitState:
    """What callbacks see. Tensors are detached, cropped to the image, NCHW on the fit's device."""

    net: nn.Module | None  # None once a batched fit has ended (its batch runs on in other networks)
    optimizer: torch.optim.Optimizer | None  # None in a batched fit (dip.batched keeps its own Adam)
    config: FitConfig
    z: torch.Tensor
    generator: torch.Generator
    step: int = 0  # steps taken so far
    loss: float = math.nan
    output: torch.Tensor | None = None  # f(z + noise) at this step
    ema: torch.Tensor | None = None
    backtracks: int = 0
    backtracked: bool = False  # this step was undone
    stop: bool = False
    stop_reason: str = ""
    selected: torch.Tensor | None = None  # set by a callback (early stopping) to override the result
    selected_step: int | None = None
    logs: dict = field(default_factory=dict)  # per-step numbers callbacks add (e.g. PSNR)
    callbacks: list = field(default_factory=list)  # every callback of the run (checkpoints save their state)
    undo: _Snapshot | None = None  # the last good weights and Adam state (checkpoints save them too)

    @property
    def estimate(self) -> torch.Tensor | None:
        """The current best guess of the image: the EMA if kept, else the last output."""
        return self.ema if self.ema is not None else self.output


@dataclass
class FitResult:
    image: torch.Tensor = field(repr=False)  # (1, C, H, W) in [0, 1]
    step: int  # step the image comes from
    steps_run: int
    final_loss: float
    backtracks: int
    stop_reason: str


LOSS_MEMORY = 0.9  # the weight of the past in the running mean of good steps' losses (`raised_bar`)


def raised_bar(mean: Loss, loss: Loss) -> tuple[Loss, Loss]:
    """After a good step of `loss`: the running mean of the good steps' losses, and the bar the
    next step's loss is judged against (a step is undone above `jump` times it). The bar is the
    larger of the loss and the mean, so one lucky low loss does not lower it: against that loss
    alone, every step after it looked bad and was undone, with the learning rate halved each time,
    and the fit froze. Floats (the plain loop) or tensors, one value per member (on the device).

    >>> raised_bar(math.inf, 1.0), raised_bar(1.0, 0.0)
    ((1.0, 1.0), (0.9, 0.9))
    """
    if isinstance(loss, torch.Tensor):
        mean = torch.where(torch.isfinite(mean), LOSS_MEMORY * mean + (1 - LOSS_MEMORY) * loss, loss)
        return mean, torch.maximum(mean, loss)
    mean = LOSS_MEMORY * mean + (1 - LOSS_MEMORY) * loss if math.isfinite(mean) else loss
    return mean, max(mean, loss)


class _Snapshot:
    """A copy of network weights and Adam state, kept on the device, to undo a bad step, and the
    bar a step's loss is judged against (`raised_bar`).

    Adam creates its state at its first step, so a snapshot taken before it holds weights only;
    undoing to it also empties Adam's state (a fresh optimizer, as it was then)."""

    def __init__(self, net: nn.Module, optimizer: torch.optim.Optimizer):
        self.net, self.optimizer = net, optimizer
        self.tensors: list[torch.Tensor] | None = None
        self.mean = self.bar = math.inf

    def _weights(self) -> list[torch.Tensor]:
        return [p.data for p in self.net.parameters()] + list(self.net.buffers())

    def _state(self) -> list[torch.Tensor]:
        return [
            value
            for p in self.net.parameters()
            for value in self.optimizer.state.get(p, {}).values()
            if torch.is_tensor(value)
        ]

    def save(self, loss: float) -> None:
        live = self._weights() + self._state()
        if self.tensors is None or len(self.tensors) != len(live):
            self.tensors = [t.detach().clone() for t in live]
        else:
            torch._foreach_copy_(self.tensors, live)
        self.mean, self.bar = raised_bar(self.mean, loss)

    def restore(self) -> None:
        weights = self._weights()
        with_state = self.tensors is not None and len(self.tensors) > len(weights)
        live = weights + (self._state() if with_state else [])
        if self.tensors is None or len(self.tensors) != len(live):
            raise RuntimeError("nothing to go back to: the first step already failed")
        with torch.no_grad():
            torch._foreach_copy_(live, self.tensors)
        if not with_state:
            self.optimizer.state.clear()

    def state_dict(self) -> dict:
        return {"tensors": self.tensors, "loss": self.bar, "mean": self.mean}

    def load_state_dict(self, data: dict | tuple) -> None:
        if isinstance(data, tuple):  # checkpoints written as (tensors, loss)
            data = {"tensors": data[0], "loss": data[1]}
        # older checkpoints judged against the last good loss alone: it starts the mean
        self.tensors, self.bar, self.mean = data["tensors"], data["loss"], data.get("mean", data["loss"])


def mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The data term of every restoration task: mean squared error."""
    return torch.mean((prediction - target) ** 2)


def full_precision(tensor: torch.Tensor) -> torch.Tensor:
    """Mixed-precision outputs back to float32 for the loss; float32 and float64 stay as they are."""
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


def make_adam(net: nn.Module, lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam over the network's weights; the fused kernel where torch has one (CPU, CUDA): one
    call per step instead of a dozen small ops per weight tensor (measured 6.8 -> 1.3 ms a step
    for the 32-channel skip net on the 2-core CPU)."""
    return torch.optim.Adam(net.parameters(), lr=lr, fused=device.type in ("cpu", "cuda"))


def fit(
    net: nn.Module,
    z: torch.Tensor,
    target: torch.Tensor,
    operator: Callable[[torch.Tensor], torch.Tensor],
    config: FitConfig,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = mse,
    crop: Callable[[torch.Tensor], torch.Tensor] = lambda x: x,
    generator: torch.Generator | None = None,
    callbacks: Sequence[Callback] = (),
    acceleration: Acceleration = Acceleration(),
) -> FitResult:
    """Minimise loss_fn(A(crop(net(z))), y) (by default the mean squared error) by Adam and
    return the restored image.

    The result is the image a callback selected (early stopping), else the EMA, else the
    last output. `acceleration` sets precision, layout, compilation and the CUDA graph (not the
    result's meaning: the loss and all state stay float32). With the CUDA graph the step runs in
    `dip.graphed`, on a copy of `net`.
    """
    if acceleration.cuda_graph:
        from .batched import Member
        from .graphed import fit_on_device

        generator = generator or torch.Generator(device=z.device).manual_seed(0)
        member = Member(net, z, target, operator, generator, loss_fn, crop, callbacks)
        return fit_on_device([member], config, acceleration)[0]
    with acceleration.arithmetic(z.device):
        return _fit(net, z, target, operator, config, loss_fn, crop, generator, callbacks, acceleration)


def _fit(net, z, target, operator, config, loss_fn, crop, generator, callbacks, acceleration) -> FitResult:
    forward, z = acceleration.prepare(net, z)
    generator = generator or torch.Generator(device=z.device).manual_seed(0)
    optimizer = make_adam(net, config.lr, z.device)
    snapshot = _Snapshot(net, optimizer)
    state = FitState(net, optimizer, config, z, generator, callbacks=list(callbacks), undo=snapshot)
    jump = 10 ** (config.backtrack_db / 10) if config.backtrack_db is not None else math.inf
    noise = torch.empty_like(z, memory_format=torch.contiguous_format)  # same draws in any layout
    scaler = acceleration.scaler(z.device)
    net.train()
    for callback in callbacks:
        callback.on_start(state)

    while state.step < config.steps and not state.stop:
        optimizer.zero_grad(set_to_none=True)
        net_input = z
        if config.reg_noise_std > 0:
            net_input = z + noise.normal_(generator=generator) * config.reg_noise_std
        with acceleration.autocast(z.device):
            out = full_precision(crop(forward(net_input)))
        loss = loss_fn(operator(out), target)
        loss_value = loss.item()
        state.step += 1
        bad = not math.isfinite(loss_value) or loss_value > snapshot.bar * jump
        state.backtracked = bad and snapshot.tensors is not None
        if state.backtracked:
            snapshot.restore()
            state.backtracks += 1
            for group in optimizer.param_groups:
                group["lr"] *= config.backtrack_lr_factor
        elif not math.isfinite(loss_value):
            raise FloatingPointError("the loss is not finite at the first step: check the inputs")
        else:
            if config.backtrack_db is not None:
                snapshot.save(loss_value)
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            state.loss = loss_value
            state.output = out.detach()
            update_ema(state)
        for callback in callbacks:
            callback.on_step(state)
    return finish(state)


def ema_weight(ema: float, ramp: float | None, step: int) -> float:
    """The share of the running average kept at `step`: `ema`, or min(ema, (1 + step) / (ramp + step))
    with a ramp (see `FitConfig.ema_ramp`)."""
    return ema if ramp is None else min(ema, (1 + step) / (ramp + step))


def update_ema(state: FitState) -> None:
    """Fold this step's output into the running average (if the config keeps one)."""
    config = state.config
    if config.ema is None:
        return
    weight = ema_weight(config.ema, config.ema_ramp, state.step)
    state.ema = (
        state.output.clone() if state.ema is None else state.ema.mul_(weight).add_(state.output, alpha=1 - weight)
    )


def finish(state: FitState) -> FitResult:
    """End a fit: tell the callbacks, and return the image a callback selected, else the estimate."""
    if state.step >= state.config.steps and not state.stop_reason:
        state.stop_reason = f"step budget of {state.config.steps} reached"
    for callback in state.callbacks:
        callback.on_end(state)
    image = state.selected if state.selected is not None else state.estimate
    if image is None:
        raise FloatingPointError("no step succeeded: the loss was never finite")
    step = state.selected_step if state.selected is not None else state.step
    return FitResult(image.clamp(0, 1), step, state.step, state.loss, state.backtracks, state.stop_reason)
