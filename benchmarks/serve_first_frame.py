"""From `dip serve` to the first live frame: start the server (a fresh process), upload a
256x256 photo, ask for a denoising run, and time the first frame's event on the live stream;
the time to the printed URL and the upload's time too. Three rounds, each a new server.

    python benchmarks/serve_first_frame.py [--rounds 3] [--size 256] [--device cpu]

Writes benchmarks/results/serve-first-frame-DEVICE-DATE.md.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from dip.bench.results import append_row, results_file


def request(url: str, token: str, body: bytes | None = None, headers: dict | None = None):
    headers = {"X-Dip-Token": token, **(headers or {})}
    return urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=120)


def one_round(size: int, device: str) -> dict[str, float]:
    photo = data.astronaut()[:size, :size].astype(np.float32) / 255
    noisy = (photo + np.random.default_rng(0).normal(0, 25 / 255, photo.shape)).clip(0, 1)
    encoded = io.BytesIO()
    Image.fromarray((noisy * 255 + 0.5).astype(np.uint8)).save(encoded, format="PNG")
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "dip", "serve", "--port", "0", "--device", device],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = re.search(r"(http://\S+)", server.stdout.readline()).group(1)
        printed = time.perf_counter()
        base, token = url.split("/?")[0], url.split("token=")[1]
        upload = json.load(request(base + "/api/uploads", token, encoded.getvalue(), {"X-Filename": "photo.png"}))
        uploaded = time.perf_counter()
        job = {"upload": upload["id"], "task": "denoise", "options": {"sigma": "25"}, "preset": "default"}
        answer = request(base + "/api/jobs", token, json.dumps(job).encode(), {"Content-Type": "application/json"})
        job_id = json.load(answer)["id"]
        with request(f"{base}/api/jobs/{job_id}/events", token) as stream:
            for line in stream:
                if line.startswith(b"event: frame"):
                    break
        first = time.perf_counter()
        request(f"{base}/api/jobs/{job_id}/stop", token, b"")
    finally:
        server.terminate()
        server.wait(timeout=60)
    return {"url": printed - started, "upload": uploaded - printed, "first frame": first - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    path = results_file(
        Path(__file__).parent / "results",
        f"serve-first-frame-{args.device}",
        "From `dip serve` to the first live frame",
        [f"a {args.size}x{args.size} noisy photo, denoise (sigma 25, default preset); seconds from the server's start"],
        ["round", "URL printed", "upload (after the URL)", "first frame"],
    )
    for number in range(1, args.rounds + 1):
        times = one_round(args.size, args.device)
        append_row(path, [number, f"{times['url']:.2f}", f"{times['upload']:.2f}", f"{times['first frame']:.2f}"])
    print(f"results: {path}")


if __name__ == "__main__":
    main()
