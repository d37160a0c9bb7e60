"""Independent work spread over processes on a CPU, the cores shared out between them.

The fitting loop alone does not use two cores well: on the 2-core CPU of the benchmarks, two
fits side by side on one core each made 1.2-1.5x the steps per second of one fit on both
(`benchmarks/threads_probe.py`). End to end (`benchmarks/workers.py`: the workers' start, each
fit's preparation, the refine step) two workers saved 18% on 128 px fits and nothing at 64 px
(against fused batches) or 256 px, so one process stays the default: `dip.run(...,
workers=N)` and `--workers N` ask for more (the tiles of a photo, the restarts of an ensemble,
the images of a folder).

Each worker is a fresh interpreter running this module (`python -m dip.workers`), its torch on
its share of the cores: it never imports the caller's script, so a script without an
`if __name__ == "__main__":` guard is safe, and nothing in the calling process changes. Tasks
and results travel pickled over the worker's pipes: the function must be importable by name
(a module-level function of an installed module) and its arguments plain data.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .errors import DipError

WORTH_SECONDS = 60.0  # work below this (estimated) stays in one process: a worker takes 2-5 s to start


def usable_cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Torch threads for each of `workers` processes so that together they use every core once.

    >>> threads_per_worker(2, cores=8), threads_per_worker(3, cores=2)
    (4, 1)
    """
    cores = usable_cores() if cores is None else cores
    return max(1, cores // max(1, workers))


def may_spawn() -> bool:
    """Whether this process may start worker processes (a daemonic one, such as some cluster
    workers, may not)."""
    return not multiprocessing.current_process().daemon


class _Died(Exception):
    """A worker's pipe closed before its answer came."""


class _Worker:
    """One worker process: a task sent, its answer read back (by one feeding thread of `Spread`)."""

    def __init__(self, threads: int) -> None:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        paths = [path or os.getcwd() for path in sys.path]  # where this process found dip (and the caller's modules)
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dip.workers", str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )

    def ask(self, function: Callable[..., Any], args: tuple) -> tuple[str, Any]:
        pickle.dump((function, args), self.process.stdin)
        self.process.stdin.flush()
        try:
            return pickle.load(self.process.stdout)
        except (EOFError, pickle.UnpicklingError):
            raise _Died() from None

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                pickle.dump(None, self.process.stdin)
                self.process.stdin.close()
                self.process.wait(timeout=10)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                self.process.kill()
        self.process.wait()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


class Spread:
    """`function(*task)` for each task in `workers` processes, started at once; iterate for
    (task index, result) as each ends. A task's error is raised by the iteration as it was
    raised there. Leaving the `with` block ends the processes (at once if tasks remain).

    >>> from operator import add
    >>> with Spread(add, [(1, 2), (3, 4)], workers=2) as spread:
    ...     sorted(spread)
    [(0, 3), (1, 7)]
    """

    def __init__(self, function: Callable[..., Any], tasks: Sequence[tuple], workers: int) -> None:
        self.total = len(tasks)
        self._todo: queue.Queue = queue.Queue()
        for item in enumerate(tasks):
            self._todo.put(item)
        self._done: queue.Queue = queue.Queue()
        count = max(1, min(workers, len(tasks)))
        self._workers = [_Worker(threads_per_worker(count)) for _ in range(count)]
        for worker in self._workers:
            threading.Thread(target=self._feed, args=(worker, function), daemon=True).start()

    def _feed(self, worker: _Worker, function: Callable[..., Any]) -> None:
        while True:
            try:
                index, task = self._todo.get_nowait()
            except queue.Empty:
                return
            try:
                self._done.put((index, *worker.ask(function, task)))
            except (_Died, OSError, ValueError):
                self._done.put((index, "died", None))
                return

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        for _ in range(self.total):
            index, status, value = self._done.get()
            if status == "died":
                raise DipError("a worker process died (out of memory?); run with workers=1, or a smaller tile")
            if status == "error":
                raise value
            yield index, value

    def __enter__(self) -> Spread:
        return self

    def __exit__(self, kind, error, trace) -> None:
        finished = kind is None and self._todo.empty()
        for worker in self._workers:
            worker.close() if finished else worker.kill()


def _serve(threads: int) -> None:
    """A worker's loop: read a pickled (function, args), answer ("ok", result) or ("error",
    exception), until told to stop. Answers go out on a copy of the standard output; anything
    the work prints goes to the standard error."""
    import torch

    torch.set_num_threads(threads)
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    tasks = sys.stdin.buffer
    while True:
        try:
            task = pickle.load(tasks)
        except EOFError:
            return
        if task is None:
            return
        function, args = task
        try:
            answer = ("ok", function(*args))
        except Exception as error:
            answer = ("error", error)
        try:
            data = pickle.dumps(answer)
        except Exception:
            data = pickle.dumps(("error", DipError(f"{answer[1].__class__.__name__}: {answer[1]}")))
        answers.write(data)
        answers.flush()


if __name__ == "__main__":
    try:
        _serve(int(sys.argv[1]))
    except KeyboardInterrupt:  # Ctrl-C reaches the workers too; the caller reports it
        sys.exit(130)
