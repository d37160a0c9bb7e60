"""Extras that hang off the fitting loop: progress, metrics, snapshots, checkpoints."""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import DipError
from .fit import Callback, FitState
from .metrics import psnr_torch

log = logging.getLogger("dip")


def to_numpy_image(tensor: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) tensor in [0, 1] -> float32 (H, W, C) array of its own (on a CPU `.numpy()`
    shares the tensor's memory, and the running average is updated in place)."""
    return tensor.detach()[0].permute(1, 2, 0).float().cpu().numpy().copy()


class ReferenceMetrics(Callback):
    """PSNR of the current estimate against a known clean image, every `every` steps and at the
    last; at the end also of the last raw output f(z + noise) (`last_output`), which differs from
    the estimate where a running average is kept: one fit tells what either result would score.

    Only for reporting and benchmarks: it never influences the fit.
    """

    def __init__(self, reference: torch.Tensor, every: int = 1):
        self.reference, self.every = reference, every
        self.history: list[tuple[int, float]] = []
        self.best: tuple[int, float] | None = None
        self.last_output: float | None = None

    def on_step(self, state: FitState) -> None:
        if state.step % self.every and state.step != state.config.steps:
            return
        value = psnr_torch(state.estimate, self.reference)
        state.logs["psnr"] = value
        self.history.append((state.step, value))
        if self.best is None or value > self.best[1]:
            self.best = (state.step, value)

    def on_end(self, state: FitState) -> None:
        if state.output is not None:
            self.last_output = psnr_torch(state.output, self.reference)

    def state_dict(self) -> dict:
        return {"history": list(self.history), "best": self.best}

    def load_state_dict(self, data: dict) -> None:
        self.history, self.best = list(data["history"]), data["best"]


class LossHistory(Callback):
    """Every step's loss, for curves."""

    def __init__(self):
        self.history: list[tuple[int, float]] = []

    def on_step(self, state: FitState) -> None:
        self.history.append((state.step, state.loss))

    def state_dict(self) -> dict:
        return {"history": list(self.history)}

    def load_state_dict(self, data: dict) -> None:
        self.history = list(data["history"])


def _is_terminal(stream) -> bool:
    """Whether a progress bar drawn on `stream` would show (tqdm's own test with `disable=None`)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def _duration(seconds: float) -> str:
    """'45 s', '12 min', '2.5 h': a time left or taken, to the precision a log line needs."""
    if seconds < 100:
        return f"{seconds:.0f} s"
    if seconds < 6000:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class _Lines:
    """At most one progress line every `every` seconds through `logging` (logger "dip"): what a
    bar becomes where its stream is not a terminal (a log file, a pipe), so a fit written to a
    log is not silent for hours. `-q` and any logging setup above INFO silence it."""

    def __init__(self, every: float, clock: Callable[[], float]):
        self.every, self.clock = every, clock
        self.began = self.last = clock()
        self.told = False

    @classmethod
    def instead_of_bar(cls, disable: bool | None, stream, every: float, clock: Callable[[], float]) -> _Lines | None:
        """Lines where tqdm would hide a bar with this `disable` (None: shown only on a terminal)."""
        return cls(every, clock) if disable is None and not _is_terminal(stream) else None

    def due(self) -> bool:
        now = self.clock()
        if now - self.last < self.every:
            return False
        self.last, self.told = now, True
        return True

    def elapsed(self) -> float:
        return self.clock() - self.began


class ProgressBar(Callback):
    """A tqdm bar with loss, PSNR (when a reference is known), backtracks and ETA; where its
    stream is not a terminal and `disable` is None, a line every `every` seconds instead (step,
    loss, PSNR, pace, time left: see `_Lines`) and one when the fit ends. One bar may follow the
    fits of a batch (each member's callbacks hold it): it shows the furthest fit's step, and
    closes when the last one ends."""

    def __init__(
        self,
        description: str = "fitting",
        file=None,
        disable: bool | None = None,
        every: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.description, self.file, self.disable = description, file or sys.stderr, disable
        self.every, self.clock = every, clock
        self.bar = None
        self.lines: _Lines | None = None
        self.running = 0
        self.step = self.first = 0

    def on_start(self, state: FitState) -> None:
        from tqdm import tqdm

        self.running += 1
        if self.bar is not None or self.lines is not None:
            return
        self.step = self.first = state.step
        self.lines = _Lines.instead_of_bar(self.disable, self.file, self.every, self.clock)
        if self.lines is not None:
            return
        self.bar = tqdm(
            total=state.config.steps,
            initial=state.step,
            desc=self.description,
            file=self.file,
            disable=self.disable,
            dynamic_ncols=True,
            unit="step",
        )

    def on_step(self, state: FitState) -> None:
        if state.step <= self.step:  # a fit of the batch behind the furthest one
            return
        advanced, self.step = state.step - self.step, state.step
        if self.lines is not None:
            if self.lines.due():
                log.info("%s", self._line(state))
            return
        fields = {"loss": f"{state.loss:.5f}"}
        if "psnr" in state.logs:
            fields["psnr"] = f"{state.logs['psnr']:.2f}"
        if state.backtracks:
            fields["undone"] = state.backtracks
        self.bar.set_postfix(fields, refresh=False)
        self.bar.update(advanced)

    def _line(self, state: FitState) -> str:
        """'denoise: step 700/3000, loss 0.00412, PSNR 31.20, 4.21 s a step, about 2.7 h left'."""
        pace = self.lines.elapsed() / (self.step - self.first)
        parts = [f"step {self.step}/{state.config.steps}", f"loss {state.loss:.5f}"]
        if "psnr" in state.logs:
            parts.append(f"PSNR {state.logs['psnr']:.2f}")
        if state.backtracks:
            parts.append(f"{state.backtracks} undone")
        parts.append(f"{pace:.2f} s a step, about {_duration(pace * (state.config.steps - self.step))} left")
        return f"{self.description}: " + ", ".join(parts)

    def on_end(self, state: FitState) -> None:
        self.running -= 1
        if self.running > 0:
            return
        if self.bar is not None:
            self.bar.close()
        elif self.lines is not None and self.lines.told:
            log.info("%s: ended at step %d after %s", self.description, self.step, _duration(self.lines.elapsed()))


class FitCounter(Callback):
    """A tqdm bar of the fits of a queue that have ended (fits that wait for a place in a batch,
    `dip.batched.fit_batch`); every fit of the queue holds it. Where its stream is not a terminal
    and `disable` is None, a line as a fit ends, at most one every `every` seconds."""

    def __init__(
        self,
        description: str,
        total: int,
        file=None,
        disable: bool | None = None,
        every: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.description, self.total, self.file, self.disable = description, total, file or sys.stderr, disable
        self.every, self.clock = every, clock
        self.bar = None
        self.lines: _Lines | None = None
        self.count = 0

    def on_start(self, state: FitState) -> None:
        from tqdm import tqdm

        if self.bar is not None or self.lines is not None:
            return
        self.lines = _Lines.instead_of_bar(self.disable, self.file, self.every, self.clock)
        if self.lines is not None:
            return
        self.bar = tqdm(total=self.total, desc=self.description, file=self.file, disable=self.disable, unit="fit")

    def on_end(self, state: FitState) -> None:
        self.ended(state.step)

    def ended(self, steps: int) -> None:
        """One more fit ended, after `steps` steps (also for fits made in another process)."""
        self.on_start(None)
        self.count += 1
        if self.lines is not None:
            if self.lines.due():
                log.info("%s: %d/%d ended, the last after %d steps", self.description, self.count, self.total, steps)
            return
        self.bar.set_postfix({"steps": steps}, refresh=False)
        self.bar.update(1)
        if self.bar.n >= self.total:
            self.bar.close()


@dataclass
class Frame:
    """One snapshot of the restoration process."""

    step: int
    loss: float
    logs: dict
    path: Path | None = None
    image: np.ndarray | None = None


class Snapshots(Callback):
    """Keep the estimate every `every` steps (and the last), in memory or as PNGs in `directory`."""

    def __init__(self, every: int, directory: str | os.PathLike | None = None, prefix: str = "step"):
        if every < 1:
            raise ValueError("snapshot interval must be at least 1 step")
        self.every, self.prefix = every, prefix
        self.directory = Path(directory) if directory is not None else None
        self.frames: list[Frame] = []

    def _take(self, state: FitState) -> None:
        if state.estimate is None or (self.frames and self.frames[-1].step == state.step):
            return
        image = to_numpy_image(state.estimate)
        frame = Frame(state.step, state.loss, dict(state.logs))
        if self.directory is None:
            frame.image = image
        else:
            from .io import Picture, write_image

            self.directory.mkdir(parents=True, exist_ok=True)
            frame.path = write_image(self.directory / f"{self.prefix}_{state.step:06d}.png", Picture(image))
        self.frames.append(frame)

    def on_step(self, state: FitState) -> None:
        if state.step % self.every == 0:
            self._take(state)

    def on_end(self, state: FitState) -> None:
        self._take(state)


CHECKPOINT_FORMAT = 2


class Checkpoint(Callback):
    """Save everything needed to continue a run exactly (network, Adam, EMA, random generator,
    step, the selected iterate and every callback's own state) every `every` steps, atomically;
    with `resume`, continue from the file.

    The file holds tensors and plain data only and is read with `torch.load(weights_only=True)`,
    so loading it cannot run code; `meta` (plain data: the observation's hash, problem, preset,
    seed, options) names the run it belongs to, and resuming a different run is refused.
    `request()` (e.g. from a signal handler) makes the next step save and stop the run, marked
    `interrupted`. With `interval` (seconds), a step that `every` selects saves only once that
    long has passed since the last save (or the start): steady saves whatever a step costs."""

    def __init__(
        self,
        path: str | os.PathLike,
        every: int = 100,
        meta: dict | None = None,
        resume: bool = False,
        interval: float | None = None,
    ):
        self.path, self.every, self.meta, self.interval = Path(path), every, meta or {}, interval
        self._last_save = time.monotonic()
        self.saved: list[int] = []
        self.requested = self.interrupted = False
        self.resumed_from: int | None = None
        self.data = self._load() if resume else None
        if not resume and self.path.exists():
            raise DipError(f"checkpoint {self.path} exists from an earlier run: resume it, or delete it")
        if self.path.parent and not self.path.parent.is_dir():
            raise DipError(f"checkpoint folder does not exist: {self.path.parent}")

    def _load(self) -> dict:
        """The saved state, checked to be safe plain data that belongs to this run."""
        if not self.path.is_file():
            raise DipError(f"no checkpoint to resume at {self.path}")
        try:
            data = torch.load(self.path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise DipError(
                f"refusing checkpoint {self.path}: it holds objects other than tensors and plain "
                "data (loading it could run code)"
            ) from None
        except Exception as error:
            raise DipError(f"cannot read checkpoint {self.path}: {error.__class__.__name__}") from None
        if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
            raise DipError(f"{self.path} is not a dip checkpoint of this version")
        differ = sorted(
            key for key in set(self.meta) | set(data["meta"]) if self.meta.get(key) != data["meta"].get(key)
        )
        if differ:
            raise DipError(
                f"checkpoint {self.path} belongs to another run: its {', '.join(differ)} "
                f"differ{'s' if len(differ) == 1 else ''} from this one's"
            )
        return data

    def request(self, *_) -> None:
        self.requested = True

    def on_start(self, state: FitState) -> None:
        if self.data is None:
            return
        data, device = self.data, state.z.device
        state.net.load_state_dict(data["net"])
        state.optimizer.load_state_dict(data["optimizer"])
        state.generator.set_state(data["generator"])  # a CPU byte tensor for either device's generator
        moved = {
            key: data[key].to(device) if torch.is_tensor(data[key]) else data[key]
            for key in ("ema", "output", "selected")
        }
        state.ema, state.output, state.selected = moved["ema"], moved["output"], moved["selected"]
        state.selected_step = data["selected_step"]
        state.step, state.loss, state.backtracks = data["step"], data["loss"], data["backtracks"]
        if state.undo is not None and data["undo"] is not None:
            undo = dict(data["undo"])
            if undo["tensors"] is not None:
                undo["tensors"] = [t.to(device) for t in undo["tensors"]]
            state.undo.load_state_dict(undo)
        for callback, saved in zip(self._others(state), data["callbacks"]):
            if saved is not None:
                callback.load_state_dict(_to_device(saved, device))
        self.resumed_from = state.step
        self.data = None

    def _others(self, state: FitState) -> list[Callback]:
        return [c for c in state.callbacks if c is not self]

    def on_step(self, state: FitState) -> None:
        if self.requested:
            self.save(state)
            self.interrupted = state.stop = True
            state.stop_reason = f"interrupted: state saved at step {state.step} in {self.path}"
        elif state.step % self.every == 0 and (
            self.interval is None or time.monotonic() - self._last_save >= self.interval
        ):
            self.save(state)

    def save(self, state: FitState) -> None:
        from .io import atomic_path

        data = {
            "format": CHECKPOINT_FORMAT,
            "meta": self.meta,
            "net": state.net.state_dict(),
            "optimizer": state.optimizer.state_dict(),
            "generator": state.generator.get_state(),
            "ema": state.ema,
            "output": state.output,
            "selected": state.selected,
            "selected_step": state.selected_step,
            "step": state.step,
            "loss": state.loss,
            "backtracks": state.backtracks,
            "undo": state.undo.state_dict() if state.undo is not None else None,
            "callbacks": [c.state_dict() if hasattr(c, "state_dict") else None for c in self._others(state)],
        }
        with atomic_path(self.path) as temp:
            torch.save(data, temp)
        self.saved.append(state.step)
        self._last_save = time.monotonic()


@contextlib.contextmanager
def saving_on_signals(checkpoints: Sequence[Checkpoint]) -> Iterator[None]:
    """While fitting, Ctrl-C and SIGTERM ask each checkpoint to save and stop its fit at the end
    of the step (`Checkpoint.request`): the one fitting acts on it, and the caller, seeing a
    checkpoint `requested`, stops too. Main thread only: signals cannot be caught elsewhere."""
    if not checkpoints or threading.current_thread() is not threading.main_thread():
        yield
        return

    def request(*_) -> None:
        for checkpoint in checkpoints:
            checkpoint.request()

    previous = {sig: signal.signal(sig, request) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _to_device(value, device: torch.device):
    """Tensors inside plain containers, moved to `device`."""
    if torch.is_tensor(value):
        return value.to(device)
    if isinstance(value, dict):
        return {key: _to_device(item, device) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(item, device) for item in value)
    return value


class EarlyStopping(Callback):
    """Stop without ground truth, keeping the best iterate by a rule that needs no clean image.

    Three rules, all cheap (running numbers on the device, one image kept):
    - discrepancy, when the observation's noise variance is known (or estimated): the fit has
      explained the image and starts on the noise once the data term falls to the noise level.
      A smoothed loss (EMA, `loss_decay`) is compared with `noise_variance`; the run stops there
      and keeps the current estimate (Morozov's discrepancy principle).
    - held-out, when some observed pixels were left out of the fit (`held_out`: where they are,
      1 / 0, and their values): the estimate's squared error there is measured each step; they
      are pixels the network never saw, as the holes of an inpainting, so the estimate where it
      is lowest is kept, and the run stops once no new minimum has appeared for `patience` steps.
    - variance, otherwise: an exponential moving mean m and variance v of the iterates x_t,
      v <- a v + (1 - a) mean((x_t - m)^2). The fit first converges (v falls), then starts fitting
      the noise (v rises again); the estimate at the lowest v is kept and the run stops once no
      new minimum has appeared for `patience` steps (Wang et al., "Early stopping for deep image
      prior", with an exponential window instead of a buffer of the last W iterates).
    """

    def __init__(
        self,
        patience: int = 1000,
        decay: float = 0.99,
        warmup: int = 100,
        noise_variance: float | None = None,
        loss_decay: float = 0.98,
        held_out: tuple[torch.Tensor, torch.Tensor] | None = None,
    ):
        self.patience, self.decay, self.warmup = patience, decay, warmup
        self.noise_variance, self.loss_decay, self.held_out = noise_variance, loss_decay, held_out
        self.held_count = float(held_out[0].sum()) * held_out[1].shape[1] if held_out is not None else 0.0
        self.mean: torch.Tensor | None = None
        self.variance = 0.0
        self.loss_average: float | None = None
        self.lowest = float("inf")  # of the variance or of the held-out error
        self.best_step: int | None = None

    @property
    def rule(self) -> str:
        if self.noise_variance is not None:
            return "discrepancy"
        return "variance" if self.held_out is None else "held-out"

    def on_step(self, state: FitState) -> None:
        if state.backtracked or state.output is None:
            return
        if self.noise_variance is not None:
            self._discrepancy(state)
        elif self.held_out is not None:
            self._held_out(state)
        else:
            self._variance(state)

    def _discrepancy(self, state: FitState) -> None:
        self.loss_average = (
            state.loss
            if self.loss_average is None
            else self.loss_decay * self.loss_average + (1 - self.loss_decay) * state.loss
        )
        state.logs["smoothed loss"] = self.loss_average
        if state.step >= self.warmup and self.loss_average <= self.noise_variance:
            self.best_step = state.step
            state.stop = True
            state.stop_reason = (
                f"early stop at step {state.step}: the smoothed loss "
                f"{self.loss_average:.4g} reached the noise variance {self.noise_variance:.4g}"
            )

    def _variance(self, state: FitState) -> None:
        x = state.output
        if self.mean is None:
            self.mean = x.clone()
            return
        delta = x - self.mean
        self.mean.add_(delta, alpha=1 - self.decay)
        self.variance = self.decay * self.variance + (1 - self.decay) * float(torch.mean(delta * delta))
        state.logs["variance"] = self.variance
        if state.step >= self.warmup:
            self._keep_lowest(state, self.variance, "outputs settled most")

    def _held_out(self, state: FitState) -> None:
        where, values = self.held_out
        squared = (state.estimate - values).square().mul_(where)
        error = float(squared.sum()) / self.held_count
        state.logs["held-out error"] = error
        if state.step >= self.warmup:
            self._keep_lowest(state, error, "the held-out pixels were met best")

    def _keep_lowest(self, state: FitState, value: float, what: str) -> None:
        """Keep the estimate where `value` is lowest; stop `patience` steps after it."""
        if value < self.lowest:
            self.lowest, self.best_step = value, state.step
            state.selected = state.estimate.clone() if state.selected is None else state.selected.copy_(state.estimate)
            state.selected_step = state.step
        elif state.step - self.best_step >= self.patience:
            state.stop = True
            state.stop_reason = (
                f"early stop at step {state.step}: {what} at step {self.best_step}, no better in {self.patience} steps"
            )

    def state_dict(self) -> dict:
        """What a checkpoint needs to continue the rule exactly."""
        return {
            "mean": self.mean,
            "variance": self.variance,
            "loss_average": self.loss_average,
            "lowest": self.lowest,
            "best_step": self.best_step,
        }

    def load_state_dict(self, data: dict) -> None:
        for key, value in data.items():
            setattr(self, "lowest" if key == "best_variance" else key, value)  # best_variance: older checkpoints


class StuckDetector(Callback):
    """Stop a run that is not fitting at all by step `at_step`: its loss is still above
    `ratio` times the loss of the best constant image (the target's variance). The paper's
    flash/no-flash runs sometimes collapse to a flat reddish image this way. at_step 0: no check."""

    def __init__(self, target: torch.Tensor, at_step: int = 100, ratio: float = 0.9):
        self.at_step, self.ratio = at_step, ratio
        self.baseline = float(torch.mean((target - target.mean(dim=(2, 3), keepdim=True)) ** 2))
        self.stuck = False

    def on_step(self, state: FitState) -> None:
        if state.step == self.at_step and state.loss > self.ratio * self.baseline:
            self.stuck = state.stop = True
            state.stop_reason = (
                f"stuck: loss {state.loss:.4g} at step {state.step} is "
                f"{state.loss / self.baseline:.0%} of a flat image's"
            )
