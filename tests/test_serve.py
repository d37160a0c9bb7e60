"""`dip serve` in a real browser (Playwright + Debian's chromium): open a photo, paint a mask,
watch live frames, stop, swipe, download; a denoise run; a bad upload; the token; 20 runs in a
row leak no thread, process or temporary file."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from dip.io import Picture, write_image


class Server:
    """`dip serve --port 0` in a process of its own, with its own temporary folder."""

    def __init__(self, tmp: Path, host: str = "127.0.0.1"):
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, TMPDIR=str(tmp), PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dip", "serve", "--host", host, "--port", "0", "--device", "cpu"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        line = self.process.stdout.readline()
        match = re.search(r"(http://\S+)", line)
        assert match, line + self.process.stderr.read()
        self.url = match.group(1)
        self.base = self.url.split("/?")[0]
        self.token = self.url.split("token=")[1]

    def threads(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"Threads:\s+(\d+)", status).group(1))

    def children(self) -> list[str]:
        found = subprocess.run(["ps", "--ppid", str(self.process.pid), "-o", "pid="], capture_output=True, text=True)
        return found.stdout.split()

    def temp_files(self) -> list[Path]:
        return [p for folder in self.tmp.glob("dip-serve-*") for p in folder.rglob("*")]

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("serve"))
    yield running
    running.close()
    assert running.process.returncode is not None
    assert not list(running.tmp.glob("dip-serve-*")), "the server left its temporary folder"


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    clean = data.astronaut()[30:94, 190:254].astype(np.float32) / 255
    noisy = clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape)
    write_image(path, Picture(noisy.clip(0, 1).astype(np.float32)))
    return path


def open_page(browser, server):
    page = browser.new_page(viewport={"width": 1200, "height": 1400}, accept_downloads=True)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server.url)
    page.wait_for_function("document.getElementById('task').options.length > 0")
    return page, errors


def start(page, photo: Path, task: str, steps: int, **options) -> None:
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("#setup:not([hidden])")
    page.select_option("#task", task)
    for name, value in options.items():
        page.fill(f"#option-{name}", str(value))
    page.fill("#steps", str(steps))


def finish(page, timeout: float = 120_000) -> str:
    page.wait_for_selector("#compare:not([hidden])", timeout=timeout)
    return page.locator("#status").get_attribute("data-status")


def test_the_page_offers_the_presets_a_user_picks():
    from dip.serve.app import describe_tasks

    offered = {task["command"]: task["presets"] for task in describe_tasks()}
    assert offered["denoise"][:2] == ["default", "paper"] and "best" in offered["denoise"]
    assert "default-sigma50" not in offered["denoise"] and "default-pixels" not in offered["inpaint"]


def test_paint_a_mask_watch_it_fill_stop_swipe_and_download(browser, server, photo, tmp_path):
    page, errors = open_page(browser, server)
    start(page, photo, "inpaint", 2000)
    assert page.locator("#brushbar").is_visible()
    box = page.locator("#mask").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.5)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + box["height"] * 0.55, steps=10)
    page.mouse.up()
    painted = page.evaluate(
        "() => { const c = document.getElementById('mask'); const d = c.getContext('2d')"
        ".getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 3; i < d.length; i += 4)"
        " if (d[i] > 127) n++; return n; }"
    )
    assert painted > 64 * 2  # a stroke across the image
    page.click("#run")
    page.wait_for_function("Number(document.getElementById('live').dataset.frames) >= 3", timeout=120_000)
    labels = page.locator("#label").inner_text()
    assert labels.startswith("step ") and "/ 2000" in labels
    page.click("#stop")
    assert finish(page) == "stopped"
    assert "stopped from the page" in page.locator("#summary").inner_text()

    swiper = page.locator("#swiper")
    swiper.fill("20")
    clip = page.locator("#swipe .after").evaluate("(im) => im.style.clipPath")
    assert clip in ("inset(0px 0px 0px 20%)", "inset(0 0 0 20%)")  # before left of the divider, after right
    box = page.locator("#swipe").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.up()
    assert 65 <= float(swiper.input_value()) <= 75

    with page.expect_download() as download:
        page.click("#download")
    saved = tmp_path / "result.png"
    download.value.save_as(saved)
    assert saved.stat().st_size > 1000
    result = Image.open(saved)
    assert result.size == (64, 64) and download.value.suggested_filename == "astronaut-inpaint.png"
    assert errors == []


def test_denoise_runs_to_the_end_with_a_classical_comparison(browser, server, photo):
    page, errors = open_page(browser, server)
    start(page, photo, "denoise", 40, sigma=25)
    page.click("#run")
    assert finish(page) == "done"
    assert page.locator("#left option").count() == 2  # the input and the problem's first classical method
    page.select_option("#left", index=1)
    assert page.locator("#swipe .before").get_attribute("src").endswith("/baseline.png")
    webp = page.request.get(server.base + page.locator("#webp").get_attribute("href"))
    assert webp.ok and Image.open(io.BytesIO(webp.body())).n_frames >= 2
    keep = os.environ.get("DIP_SCREENSHOTS")
    if keep:
        page.screenshot(path=str(Path(keep) / "serve.png"), full_page=True)
    assert errors == []


def test_a_bad_upload_is_a_message_on_the_page(browser, server, tmp_path):
    page, errors = open_page(browser, server)
    fake = tmp_path / "notes.png"
    fake.write_text("not an image at all")
    page.set_input_files("#file", str(fake))
    page.wait_for_function("document.getElementById('error').textContent.length > 0")
    message = page.locator("#error").inner_text()
    assert message.startswith("cannot read 'notes.png'") and "Traceback" not in message
    assert page.locator("#setup").is_hidden()
    assert errors == []


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"X-Dip-Token": token} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_another_host_needs_the_token(tmp_path):
    open_to_all = Server(tmp_path, host="0.0.0.0")
    try:
        assert "0.0.0.0" in open_to_all.process.stderr.readline()  # the warning
        status, body = _get(open_to_all.base + "/api/tasks")
        assert status == 403 and b"token" in body
        assert _get(open_to_all.base + "/")[0] == 403
        assert _get(open_to_all.base + "/api/tasks?token=wrong")[0] == 403
        status, body = _get(open_to_all.base + "/api/tasks", open_to_all.token)
        assert status == 200 and "inpaint" in [t["command"] for t in json.loads(body)["tasks"]]
    finally:
        open_to_all.close()


def test_twenty_runs_leak_no_threads_processes_or_files(browser, server, tmp_path):
    small = tmp_path / "small.png"
    write_image(small, Picture(data.astronaut()[100:132, 200:232].astype(np.float32) / 255))
    page, errors = open_page(browser, server)
    page.set_input_files("#file", str(small))
    page.wait_for_selector("#setup:not([hidden])")
    page.fill("#steps", "2")
    threads = None
    for run in range(20):
        page.click("#run")
        assert finish(page, timeout=60_000) == "done", run
        page.wait_for_function("!document.getElementById('run').disabled")
        if run == 1:
            threads = server.threads()
        page.evaluate("document.getElementById('compare').hidden = true")
    time.sleep(0.5)
    assert server.threads() <= threads + 1
    assert server.children() == []
    assert server.temp_files() == []
    assert errors == []


def test_the_page_and_its_scripts_need_no_network():
    static = Path(__file__).resolve().parent.parent / "src" / "dip" / "serve" / "static"
    for path in static.iterdir():
        text = path.read_text()
        assert "http://" not in text and "https://" not in text, path


def test_a_job_nobody_watches_stops_and_a_failing_job_leaves_the_worker_running(tmp_path):
    """The worker without a page: an abandoned fit stops itself; a job that raises fails alone."""
    from dip.problems import Denoising, Problem
    from dip.serve.jobs import Job, TempFolder, Upload, Worker

    temp = TempFolder()
    worker = Worker("cpu", temp, abandon_seconds=1.0)
    picture = Picture(data.astronaut()[:64, :64].astype(np.float32) / 255)
    try:
        upload = Upload("a", "a.png", picture)
        abandoned = Job("j1", upload, Denoising(25), {"steps": 100000})
        worker.submit(abandoned)
        broken = Job("j2", upload, Problem(lambda x: x[:, :, ::0]), {"steps": 5})  # a slice step of 0 raises
        worker.submit(broken)
        healthy = Job("j3", upload, Denoising(25), {"steps": 3})
        worker.submit(healthy)
        deadline = time.monotonic() + 120
        while not healthy.finished and time.monotonic() < deadline:
            broken.seen()  # these two are watched; the first is not
            healthy.seen()
            time.sleep(0.2)
        assert abandoned.status == "stopped" and "the page went away" in abandoned.message
        assert abandoned.restoration.fit.steps_run < 100000
        assert broken.status == "failed" and broken.message.startswith("unexpected ValueError")
        assert healthy.status == "done" and healthy.result is not None
    finally:
        worker.close()
        temp.close()
    assert not worker.thread.is_alive() and not temp.path.exists()
