"""Results files: markdown tables under benchmarks/results/, each opening with what produced it
(the command, the date, the machine, torch), one row appended as each item finishes so that an
interrupted run keeps what it measured, and never overwriting an earlier file."""

from __future__ import annotations

import datetime
import platform
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch


def fresh_path(path: Path) -> Path:
    """`path`, or path-2, path-3, ... if it exists: earlier results are never overwritten."""
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
    return candidate


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.machine()} CPU, {torch.get_num_threads()} threads"


def results_file(folder: Path, name: str, title: str, notes: Sequence[str], columns: Sequence[str]) -> Path:
    """Start NAME-DATE.md in `folder` (a fresh name): the title, the command that runs now, the
    date, machine and torch, the `notes` as list items, and the table's header."""
    date = datetime.date.today().isoformat()
    path = fresh_path(folder / f"{name}-{date}.md")
    lines = [
        f"# {title}",
        "",
        f"- command: `python {shlex.join(sys.argv)}`",
        f"- date: {date}; machine: {machine()}; torch {torch.__version__}",
        *(f"- {note}" for note in notes),
        "",
        "| " + " | ".join(columns) + " |",
        "|---" * len(columns) + "|",
    ]
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def append_row(path: Path, cells: Sequence[object]) -> str:
    """Append a table row (and print it); returns the row."""
    row = "| " + " | ".join(map(str, cells)) + " |"
    with open(path, "a") as out:
        out.write(row + "\n")
    print(row, flush=True)
    return row


def append_mean(path: Path, labels: Sequence[str], rows: Sequence[Sequence[float]], blanks: int = 0) -> str:
    """Append the bold column means of `rows` (dB to 2 decimals) after `labels`, then `blanks`
    empty cells (the columns, such as steps and seconds, that have no mean); returns the row.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "t.md"
    >>> append_mean(path, ["**average**"], [[30.0, 28.0], [31.0, 29.0]], blanks=1)
    | **average** | **30.50** | **28.50** |  |
    '| **average** | **30.50** | **28.50** |  |'
    """
    means = np.mean(np.asarray(rows, dtype=float), axis=0)
    return append_row(path, [*labels, *(f"**{v:.2f}**" for v in means), *[""] * blanks])
