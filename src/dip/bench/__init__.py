"""Benchmarks: the paper's tables on the paper's images (quality) and per-step cost (speed)."""

from __future__ import annotations

import os
from pathlib import Path


def data_root(given: str | Path | None = None) -> Path:
    """The shared data folder (holding `paper/`, `CBSD68/`, `dip/`): `given`, else $DIP_DATA, else
    `../shared/data` from the working folder (the checkout's neighbour when run from its root).

    Examples
    --------
    >>> from dip.bench import data_root
    >>> data_root("/data").as_posix()
    '/data'
    """
    if given:
        return Path(given)
    return Path(os.environ.get("DIP_DATA") or Path("..") / "shared" / "data")
