"""Shared fixtures: small deterministic images, and the shared data folder when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def float64():
    """float64 as torch's default type for one test: fits compared to rounding (`test_batched.py`)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


CHROMIUM = os.environ.get("DIP_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium first")
        pytest.skip(f"{CHROMIUM} not installed")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


def data_dir() -> Path:
    """`../shared/data` beside the checkout, or $DIP_DATA."""
    return Path(os.environ.get("DIP_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    folder = data_dir()
    if not folder.is_dir():
        pytest.skip(f"shared data not found at {folder} (set DIP_DATA)")
    return folder


@pytest.fixture
def astronaut_crop() -> np.ndarray:
    """64x64 float RGB crop of scikit-image's astronaut (face), in [0, 1]."""
    return (data.astronaut()[30:94, 190:254] / 255.0).astype(np.float32)
