"""The report page in a real browser: Playwright driving Debian's headless Chromium."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def report(tmp_path_factory, astronaut_crop_module):
    from dip.degrade import add_noise
    from dip.io import Picture, write_image

    folder = tmp_path_factory.mktemp("browser")
    write_image(folder / "clean.png", Picture(astronaut_crop_module))
    write_image(folder / "noisy.png", Picture(add_noise(astronaut_crop_module, 25)))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dip",
            "denoise",
            folder / "noisy.png",
            "-o",
            folder / "out.png",
            "--sigma",
            "25",
            "--steps",
            "40",
            "--reference",
            folder / "clean.png",
            "--report",
            folder / "report",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return folder / "report" / "index.html"


@pytest.fixture(scope="module")
def astronaut_crop_module():
    from skimage import data

    return (data.astronaut()[30:94, 190:254] / 255.0).astype(np.float32)


def open_page(browser, path):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(path.as_uri())
    return page, errors


def test_arrow_keys_slider_and_comparison(browser, report, tmp_path):
    page, errors = open_page(browser, report)
    label, frame = page.locator("#label"), page.locator("#frame")
    first_label, first_src = label.inner_text(), frame.get_attribute("src")
    assert first_label.startswith("step 1 / 40")
    page.keyboard.press("ArrowRight")
    assert label.inner_text().startswith("step 2 / 40")
    assert frame.get_attribute("src") != first_src
    page.keyboard.press("ArrowLeft")
    assert label.inner_text() == first_label and frame.get_attribute("src") == first_src
    assert "PSNR" in first_label

    box = page.locator("#slider").bounding_box()
    page.mouse.move(box["x"] + 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 1, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    assert label.inner_text().startswith("step 40 / 40")
    assert "result" in label.inner_text()  # the chosen step is marked

    captions = page.locator("figcaption").all_inner_texts()
    for method in ("input", "dip (default)", "NLM", "TV", "wavelet"):
        caption = next(c for c in captions if c.startswith(method))
        assert "PSNR" in caption and "SSIM" in caption
    assert any(c.startswith("reference") for c in captions)
    assert page.locator("svg.curve").count() == 2
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    keep = os.environ.get("DIP_SCREENSHOTS")
    if keep:
        shutil.copy(tmp_path / "report.png", Path(keep) / "report.png")
    assert errors == []


def test_swipe_and_zoom(browser, report):
    page, errors = open_page(browser, report)
    viewer = page.locator("#viewer")
    box = viewer.bounding_box()
    y = box["y"] + box["height"] / 2
    page.evaluate(
        """([x0, x1, y]) => {
        const v = document.getElementById('viewer');
        const touch = (x) => new Touch({identifier: 1, target: v, clientX: x, clientY: y});
        v.dispatchEvent(new TouchEvent('touchstart', {changedTouches: [touch(x0)], bubbles: true}));
        v.dispatchEvent(new TouchEvent('touchend', {changedTouches: [touch(x1)], bubbles: true}));
    }""",
        [box["x"] + box["width"] - 10, box["x"] + 10, y],
    )
    assert page.locator("#label").inner_text().startswith("step 2 / 40")
    page.locator("#zoom").fill("4")
    transforms = page.locator(".zoombox img").evaluate_all("(imgs) => imgs.map((i) => i.style.transform)")
    assert transforms and all(t == "scale(4)" for t in transforms)
    assert errors == []
