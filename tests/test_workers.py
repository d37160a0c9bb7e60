"""Fits in worker processes on a CPU (`dip.workers`): the same results as fitting here, errors
that keep their message, a worker that dies, and what stays in this process."""

import operator
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import dip
from dip.errors import DipError
from dip.workers import Spread


@pytest.fixture
def one_thread():
    """This process on one torch thread, as each of two workers on the 2-core CI machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def noisy_images(count: int, size: int = 48) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random((size, size, 3)).astype(np.float32) for _ in range(count)]


def test_spread_gives_every_result_with_its_task_index():
    with Spread(operator.mul, [(2, 3), (4, 5), (6, 7)], workers=2) as spread:
        assert sorted(spread) == [(0, 6), (1, 20), (2, 42)]


def test_a_task_error_is_raised_here_with_its_message():
    with pytest.raises(ZeroDivisionError), Spread(operator.truediv, [(1, 0)], workers=1) as spread:
        list(spread)


def test_what_a_task_prints_does_not_garble_its_answer():
    with Spread(print, [("a line on standard output",)], workers=1) as spread:
        assert list(spread) == [(0, None)]


def test_a_worker_that_dies_is_one_clear_error():
    with pytest.raises(DipError, match="a worker process died"), Spread(os._exit, [(3,)], workers=1) as spread:
        list(spread)


@pytest.mark.usefixtures("one_thread")
def test_images_fitted_in_workers_match_fits_made_here(caplog):
    images = noisy_images(3)
    problems = [dip.Denoising(25)] * 3
    with caplog.at_level("INFO", logger="dip"):
        away = dip.run_many(problems, images, steps=6, workers=2, device="cpu", progress=True)
    here = dip.run_many(problems, images, steps=6, workers=1, batch=1, device="cpu")
    assert "3 fits in 2 processes" in caplog.text
    for a, b in zip(away, here):
        np.testing.assert_allclose(a.image, b.image, atol=1e-4)
        assert a.fit.steps_run == b.fit.steps_run == 6


@pytest.mark.usefixtures("one_thread")
def test_an_ensemble_keeps_its_first_fit_here_and_its_loss_history():
    image = noisy_images(1)[0]
    away = dip.run(dip.Denoising(25), image, steps=5, restarts=3, workers=3, device="cpu")
    here = dip.run(dip.Denoising(25), image, steps=5, restarts=3, workers=1, batch=1, device="cpu")
    np.testing.assert_allclose(away.image, here.image, atol=1e-4)
    assert len(away.losses) == len(here.losses) == 5  # the first fit's, recorded here
    assert away.fit.stop_reason.startswith("mean of 3 fits")


@pytest.mark.usefixtures("one_thread")
def test_warm_tiles_fitted_in_workers_match_warm_tiles_fitted_here():
    """The first tile's fitted weights travel to the workers that fit the other tiles from them."""
    image = noisy_images(1, 96)[0]
    options = dict(steps=6, tile=64, overlap=16, device="cpu")
    away = dip.run(dip.Denoising(25), image, workers=2, **options)
    here = dip.run(dip.Denoising(25), image, workers=1, batch=1, **options)
    cold = dip.run(dip.Denoising(25), image, workers=1, batch=1, warm_tiles=False, **options)
    np.testing.assert_allclose(away.image, here.image, atol=1e-4)
    assert np.abs(here.image - cold.image).max() > 1e-2


def test_a_problem_that_cannot_travel_is_fitted_here():
    mine = dip.Problem(lambda x: x, out_channels=3)  # a lambda does not pickle
    done = dip.run_many([mine, mine], noisy_images(2, 32), steps=3, workers=2, device="cpu")
    assert [d.fit.steps_run for d in done] == [3, 3]


@pytest.mark.parametrize("workers", [0, -1, "many", 1.5])
def test_workers_must_be_auto_or_a_whole_number(workers):
    with pytest.raises(DipError, match="workers must be 'auto' or a whole number"):
        dip.run(dip.Denoising(25), noisy_images(1, 32)[0], steps=1, workers=workers, device="cpu")


def test_the_tiles_of_one_image_in_workers_from_the_command_line(tmp_path):
    from dip.io import Picture, read_image, write_image

    source, out = tmp_path / "noisy.png", tmp_path / "clean.png"
    write_image(source, Picture(noisy_images(1, 96)[0]))
    command = [sys.executable, "-m", "dip", "denoise", source, "-o", out, "--sigma", "25", "--steps", "3"]
    done = subprocess.run(
        [*map(str, command), "--tile", "64", "--overlap", "16", "--workers", "2", "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "3 fits in 2 processes" in done.stderr  # the centre tile first, here: the others start from it
    assert read_image(out).pixels.shape == (96, 96, 3)
