"""What the web app keeps: uploaded pictures, and jobs run one at a time by a worker thread.

A job is one `dip.run` call; while it fits, a callback keeps its estimate as PNG frames for the
page (every `FRAME_SECONDS`) and watches two things: the page's Stop (the fit ends and keeps its
current best) and the page itself (a job nobody has asked about for `abandon_seconds` stops: a
closed browser does not leave a fit running). Nothing here is written to disk except through
`TempFolder`, the server's own temporary folder.
"""

from __future__ import annotations

import collections
import io
import itertools
import logging
import math
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..callbacks import to_numpy_image
from ..errors import DipError
from ..fit import Callback, FitState
from ..io import Picture, join_channels, read_image, split_channels, write_image
from ..problems import Problem
from ..run import Restoration, run

log = logging.getLogger("dip")

FRAME_SECONDS = 0.5  # a live frame at most this often (and at the first step and the end)
KEEP = 16  # uploads and finished jobs kept in memory; older ones are dropped
BASELINE_PIXELS = 1024 * 1024  # the classical comparison is computed up to this size


def png(pixels: np.ndarray) -> bytes:
    """8-bit PNG bytes of a float image in [0, 1], for display."""
    array = np.clip(np.asarray(pixels, np.float32), 0, 1)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    out = io.BytesIO()
    Image.fromarray((array * 255 + 0.5).astype(np.uint8)).save(out, format="PNG", compress_level=1)
    return out.getvalue()


class TempFolder:
    """The one place the server writes: a private temporary folder, removed on close."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="dip-serve-"))
        self._names = itertools.count()

    def file(self, suffix: str) -> Path:
        """A fresh path inside the folder; the name is the server's, never a request's."""
        return self.path / f"{next(self._names):06d}{suffix}"

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


@dataclass
class Upload:
    """A decoded picture someone sent: its pixels (alpha included), name and bit depth."""

    id: str
    name: str
    picture: Picture

    @property
    def pixels(self) -> np.ndarray:
        return join_channels(self.picture)

    def preview(self) -> bytes:
        return png(self.picture.pixels)


def decode(data: bytes, name: str, temp: TempFolder, max_pixels: int) -> Upload:
    """Bytes of an image file -> Upload, through `dip.io.read_image` (its decompression-bomb
    guard and one-line errors), plus the server's own pixel limit."""
    path = temp.file(Path(name).suffix.lower()[:8] if Path(name).suffix.isascii() else "")
    try:
        path.write_bytes(data)
        picture = read_image(path)
    except DipError as error:
        raise DipError(str(error).replace(str(path), repr(name))) from None
    finally:
        path.unlink(missing_ok=True)
    height, width = picture.pixels.shape[:2]
    if width * height > max_pixels:
        raise DipError(
            f"{name!r} is {width}x{height}: this page restores up to {max_pixels / 1e6:.1f} megapixels "
            "(the command line restores larger images in tiles: dip ... --tile 512)"
        )
    return Upload(secrets.token_hex(8), name, picture)


@dataclass
class Frame:
    step: int
    loss: float
    seconds: float  # since the fit started
    eta: float | None  # seconds left at most (the step budget; the automatic stop may end sooner)
    png: bytes = field(repr=False)


@dataclass
class Job:
    """One restoration asked for by the page."""

    id: str
    upload: Upload
    problem: Problem
    options: dict  # `dip.run` keywords: preset, steps
    status: str = "queued"  # queued, running, done, stopped, failed
    message: str = ""
    frames: list[Frame] = field(default_factory=list)
    result: bytes | None = field(default=None, repr=False)  # PNG at the input's size and depth
    baseline: tuple[str, bytes] | None = field(default=None, repr=False)  # (method, preview PNG)
    restoration: Restoration | None = field(default=None, repr=False)
    total_steps: int | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    last_seen: float = field(default_factory=time.monotonic)

    @property
    def finished(self) -> bool:
        return self.status in ("done", "stopped", "failed")

    def seen(self) -> None:
        self.last_seen = time.monotonic()


class LiveFrames(Callback):
    """Frames for the page while fitting; Stop and an abandoned page end the fit."""

    def __init__(self, job: Job, abandon_seconds: float):
        self.job, self.abandon_seconds = job, abandon_seconds
        self.started = self.last = 0.0

    def on_start(self, state: FitState) -> None:
        self.started = time.monotonic()
        self.job.total_steps = state.config.steps

    def _take(self, state: FitState) -> None:
        if state.estimate is None or (self.job.frames and self.job.frames[-1].step == state.step):
            return
        now = time.monotonic()
        elapsed = now - self.started
        eta = elapsed / state.step * (state.config.steps - state.step) if state.step else None
        loss = state.loss if math.isfinite(state.loss) else float("nan")
        self.job.frames.append(Frame(state.step, loss, elapsed, eta, png(to_numpy_image(state.estimate))))
        self.last = now

    def on_step(self, state: FitState) -> None:
        if state.step == 1 or time.monotonic() - self.last >= FRAME_SECONDS:
            self._take(state)
        if self.job.stop.is_set():
            state.stop, state.stop_reason = True, "stopped from the page"
        elif time.monotonic() - self.job.last_seen > self.abandon_seconds:
            state.stop, state.stop_reason = True, "the page went away"
            self.job.stop.set()

    def on_end(self, state: FitState) -> None:
        self._take(state)


class Worker:
    """Runs jobs one at a time on one device, in a thread of its own; a job's failure is that
    job's message, never the server's end."""

    def __init__(self, device: str, temp: TempFolder, abandon_seconds: float = 30.0):
        self.device, self.temp, self.abandon_seconds = device, temp, abandon_seconds
        self.queue: collections.deque[Job] = collections.deque()
        self.jobs: dict[str, Job] = {}
        self.uploads: dict[str, Upload] = {}
        self.lock = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._loop, name="dip-worker", daemon=True)
        self.thread.start()

    def add_upload(self, upload: Upload) -> None:
        with self.lock:
            self.uploads[upload.id] = upload
            while len(self.uploads) > KEEP:
                self.uploads.pop(next(iter(self.uploads)))

    def submit(self, job: Job) -> None:
        with self.lock:
            self.jobs[job.id] = job
            self.queue.append(job)
            finished = [j for j in self.jobs.values() if j.finished]
            for old in finished[: max(0, len(finished) - KEEP)]:
                del self.jobs[old.id]
            self.lock.notify_all()

    def place(self, job: Job) -> int:
        """1 for the next job to run, 0 if it is not waiting."""
        with self.lock:
            return next((i + 1 for i, j in enumerate(self.queue) if j is job), 0)

    def stop(self, job: Job) -> None:
        """Stop a running job (it keeps its current best) or drop a waiting one."""
        with self.lock:
            job.stop.set()
            if job in self.queue:
                self.queue.remove(job)
                job.status, job.message = "stopped", "stopped before it started"

    def close(self) -> None:
        with self.lock:
            self.closed = True
            for job in self.queue:
                job.status, job.message = "stopped", "the server stopped"
            self.queue.clear()
            for job in self.jobs.values():
                job.stop.set()
            self.lock.notify_all()
        self.thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            with self.lock:
                while not self.queue and not self.closed:
                    self.lock.wait()
                if self.closed:
                    return
                job = self.queue.popleft()
                job.status = "running"
            self._run(job)

    def _run(self, job: Job) -> None:
        try:
            if time.monotonic() - job.last_seen > self.abandon_seconds:
                job.status, job.message = "stopped", "the page went away before it started"
                return
            done = run(
                job.problem,
                job.upload.pixels,
                device=self.device,
                callbacks=[LiveFrames(job, self.abandon_seconds)],
                **job.options,
            )
            job.restoration = done
            job.result = self._encode(done, job.upload.picture.bit_depth)
            job.baseline = self._baseline(job)
            stopped = job.stop.is_set()
            job.status = "stopped" if stopped else "done"
            job.message = done.summary()
        except DipError as error:
            job.status, job.message = "failed", str(error)
        except Exception as error:  # a bug must not end the server: the job fails, with one line
            log.exception("job %s failed", job.id)
            text = (str(error).strip().splitlines() or [""])[0]
            job.status, job.message = "failed", f"unexpected {error.__class__.__name__}: {text}"

    def _encode(self, done: Restoration, bit_depth: int) -> bytes:
        """The result as PNG at the input's bit depth, through `dip.io.write_image`."""
        path = self.temp.file(".png")
        try:
            picture = split_channels(done.image)
            picture.bit_depth = bit_depth
            write_image(path, picture)
            return path.read_bytes()
        finally:
            path.unlink(missing_ok=True)

    @staticmethod
    def _baseline(job: Job) -> tuple[str, bytes] | None:
        """The problem's first classical method, for the comparison (None if it has none, or the
        image is over BASELINE_PIXELS: some classical methods take minutes there)."""
        methods = job.problem.baselines()
        height, width = job.upload.picture.pixels.shape[:2]
        if not methods or height * width > BASELINE_PIXELS:
            return None
        name = next(iter(methods))
        try:
            return name, png(run(job.problem, job.upload.pixels, method=name).pixels)
        except DipError:
            return None
