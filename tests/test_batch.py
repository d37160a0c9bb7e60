"""Batches: folders and globs in, an output folder out, broken files skipped, re-runs resume;
long runs: checkpoints survive SIGKILL and SIGTERM; clusters: a killed Dask worker loses nothing."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dip.batch import collect_inputs, find_mask
from dip.io import Picture, read_image, write_image
from dip.workers import threads_per_worker


def dip(*args, timeout=600, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "dip", *map(str, args)], capture_output=True, text=True, timeout=timeout, **kwargs
    )


def tiny_images(folder: Path, count: int, size: int = 32, broken: int = 0) -> list[Path]:
    """`count` small noisy images (some in a sub-folder), then `broken` damaged files."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / ("sub" if i % 4 == 0 else "") / f"img{i:02d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_image(path, Picture(rng.random((size, size, 3)).astype(np.float32)))
        paths.append(path)
    damaged = [
        ("truncated.png", (folder / "img01.png").read_bytes()[:60]),
        ("text.png", b"not an image at all"),
        ("empty.jpg", b""),
    ]
    for name, data in damaged[:broken]:
        (folder / name).write_bytes(data)
    return paths


def test_batch_restores_the_good_images_reports_the_broken_and_resumes(tmp_path):
    source, out = tmp_path / "in", tmp_path / "out"
    tiny_images(source, 17, broken=3)
    done = dip("denoise", source, "-o", out, "--steps", "2", "--device", "cpu", "-q")
    assert done.returncode == 1
    outputs = sorted(out.rglob("*.png"))
    assert len(outputs) == 17 and (out / "sub" / "img00.png").is_file()
    assert "17 restored, 0 skipped (already done), 3 failed" in done.stderr
    for name in ("truncated.png", "text.png", "empty.jpg"):
        assert f"failed: {source / name}:" in done.stderr
    assert "Traceback" not in done.stderr
    stamps = {p: p.stat().st_mtime_ns for p in outputs}
    again = dip("denoise", source, "-o", out, "--steps", "2", "--device", "cpu", "-q")
    assert again.returncode == 1 and "0 restored, 17 skipped (already done), 3 failed" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in outputs} == stamps  # nothing redone, nothing rewritten


def test_batch_with_workers_and_a_glob(tmp_path):
    source, out = tmp_path / "in", tmp_path / "out"
    tiny_images(source, 4)
    done = dip(
        "denoise", f"{source}/img0[123].png", "-o", out, "--steps", "2", "--device", "cpu", "-q", "--workers", "2"
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.rglob("*.png")) == ["img01.png", "img02.png", "img03.png"]


def test_workers_share_the_cores():
    assert threads_per_worker(1, cores=8) == 8
    assert threads_per_worker(3, cores=8) == 2
    assert threads_per_worker(4, cores=2) == 1


def test_inputs_and_masks_are_matched_by_name(tmp_path):
    tiny_images(tmp_path / "in", 3)
    root, files = collect_inputs(str(tmp_path / "in"))
    assert root == tmp_path / "in" and len(files) == 3
    masks = tmp_path / "masks"
    (masks / "sub").mkdir(parents=True)
    (masks / "sub" / "img00_mask.png").write_bytes(b"x")
    (masks / "img01.tif").write_bytes(b"x")
    assert find_mask(masks, Path("sub/img00.png")) == masks / "sub" / "img00_mask.png"
    assert find_mask(masks, Path("img01.png")) == masks / "img01.tif"
    assert find_mask(masks, Path("img02.png")) is None


def test_inpaint_batch_needs_a_mask_per_image(tmp_path):
    source, masks, out = tmp_path / "in", tmp_path / "masks", tmp_path / "out"
    tiny_images(source, 2)
    masks.mkdir()
    hole = np.ones((32, 32, 1), np.float32)
    hole[10:20, 10:20] = 0
    write_image(masks / "img01.png", Picture(hole))
    done = dip("inpaint", source, "--mask", masks, "-o", out, "--steps", "2", "--device", "cpu", "-q")
    assert done.returncode == 1
    assert (out / "img01.png").is_file() and not (out / "sub" / "img00.png").exists()
    assert "no mask named img00" in done.stderr


def _checkpoint_step(path: Path) -> int:
    try:
        return torch.load(path, weights_only=False)["step"]
    except Exception:  # not written yet, or being replaced
        return -1


KILLED_RUN = ["--steps", "120", "--device", "cpu", "--no-early-stop", "-q"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A noisy image and what an uninterrupted `KILLED_RUN` makes of it."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    image = folder / "noisy.png"
    write_image(image, Picture(np.random.default_rng(1).random((64, 64, 3)).astype(np.float32)))
    whole = dip("denoise", image, "-o", folder / "whole.png", *KILLED_RUN)
    assert whole.returncode == 0, whole.stderr
    return image, read_image(folder / "whole.png").pixels


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, sig, uninterrupted):
    image, whole = uninterrupted

    ckpt = tmp_path / "ckpt"
    argv = [
        sys.executable,
        "-m",
        "dip",
        "denoise",
        str(image),
        "-o",
        str(tmp_path / "resumed.png"),
        *KILLED_RUN,
        "--checkpoint",
        str(ckpt),
        "--checkpoint-every",
        "20",
    ]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while _checkpoint_step(ckpt / "resumed.ckpt") < 40 and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(sig)
    _, err = process.communicate(timeout=120)
    assert not (tmp_path / "resumed.png").exists()
    if sig == signal.SIGTERM:
        assert process.returncode == 130 and "--resume" in err and "Traceback" not in err
    saved = _checkpoint_step(ckpt / "resumed.ckpt")
    assert 40 <= saved < 120

    resumed = subprocess.run([*argv, "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert np.array_equal(whole, read_image(tmp_path / "resumed.png").pixels)
    assert not (ckpt / "resumed.ckpt").exists()  # finished: nothing left to resume


def test_checkpoint_misuse_is_one_line(tmp_path):
    image = tmp_path / "a.png"
    write_image(image, Picture(np.zeros((32, 32, 3), np.float32)))
    done = dip("denoise", image, "-o", tmp_path / "b.png", "--resume")
    assert done.returncode == 1 and "--resume needs --checkpoint" in done.stderr
    done = dip("denoise", image, "-o", tmp_path / "b.png", "--scheduler", "tcp://127.0.0.1:1")
    assert done.returncode == 1 and "needs a folder or a glob" in done.stderr


def test_dask_cluster_batch_survives_a_killed_worker(tmp_path):
    distributed = pytest.importorskip("distributed")
    source, out = tmp_path / "in", tmp_path / "out"
    tiny_images(source, 6, size=64)
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        worker_dashboard_address=None,
    ) as cluster:
        with distributed.Client(cluster) as client:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dip",
                    "denoise",
                    str(source),
                    "-o",
                    str(out),
                    "--steps",
                    "150",
                    "--device",
                    "cpu",
                    "--scheduler",
                    cluster.scheduler_address,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            deadline = time.time() + 300
            while not client.processing() or not any(client.processing().values()):
                assert time.time() < deadline and process.poll() is None
                time.sleep(0.05)
            busy = next(address for address, keys in client.processing().items() if keys)
            pid = client.run(os.getpid, workers=[busy])[busy]
            os.kill(pid, signal.SIGKILL)  # the nanny restarts it; its task is retried elsewhere
            stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stdout + stderr
    assert len(list(out.rglob("*.png"))) == 6
    assert "6 restored, 0 skipped (already done), 0 failed" in stderr


def test_a_job_is_an_outcome_not_captured_output(tmp_path):
    """Jobs return structured outcomes: a run that logs nothing is still done."""
    from dip.files import Job, Recipe, run_job

    source = tiny_images(tmp_path, 2)[0]
    recipe = Recipe("denoise", {"sigma": 25.0}, {"steps": 2, "device": "cpu"})
    outcome = run_job(recipe, Job(source, tmp_path / "out" / "a.png"))
    assert outcome.status == "done" and outcome.message.startswith(f"wrote {tmp_path / 'out' / 'a.png'}")
    again = run_job(recipe, Job(source, tmp_path / "out" / "a.png"))
    assert again.status == "failed" and "already exists" in again.message


def test_same_size_images_of_a_folder_are_fitted_together(tmp_path):
    """Consecutive images of one size share batches (here of 2); each gets its own fit."""
    from skimage import data

    from dip.files import Job, Recipe, restore_files
    from dip.metrics import psnr

    rng = np.random.default_rng(1)
    clean = [data.astronaut()[y : y + 64, 100:164].astype(np.float32) / 255 for y in (20, 90, 160)]
    jobs = []
    for i, image in enumerate(clean):
        path = tmp_path / f"noisy{i}.png"
        write_image(path, Picture((image + rng.normal(0, 0.1, image.shape)).clip(0, 1).astype(np.float32)))
        jobs.append(Job(path, tmp_path / "out" / f"{i}.png"))
    odd = tmp_path / "odd.png"  # another size: its own batch
    write_image(odd, Picture(rng.random((48, 48, 3)).astype(np.float32)))
    jobs.append(Job(odd, tmp_path / "out" / "odd.png"))
    recipe = Recipe("denoise", {"sigma": 25.0}, {"steps": 120, "device": "cpu", "batch": 2, "early_stop": False})
    outcomes = list(restore_files(recipe, jobs))
    assert [o.status for o in outcomes] == ["done"] * 4
    assert [o.details[-1:] for o in outcomes] == [["fitted together with 1 other images"]] * 2 + [[], []]
    for image, job in zip(clean, jobs):  # flat sky gains ~14 dB in 120 steps, the suit's texture ~0.6
        noisy, restored = read_image(job.source).pixels, read_image(job.output).pixels
        assert psnr(restored, image) > psnr(noisy, image) + 0.4
