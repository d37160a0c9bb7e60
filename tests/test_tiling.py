"""Big images: tiles cover the image, blend without seams, and the memory estimate refuses
what cannot fit with a tile size that can."""

import subprocess
import sys

import numpy as np
import pytest
import torch

import dip
from dip.budget import check_fits, estimate
from dip.errors import DipError
from dip.fit import Callback
from dip.io import Picture, read_image, write_image
from dip.presets import get_preset
from dip.tiling import ramp, restore_tiled, tile_starts


@pytest.mark.parametrize("length, tile, overlap", [(100, 40, 10), (64, 64, 8), (257, 64, 32), (30, 64, 16)])
def test_tiles_cover_with_at_least_the_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] + min(tile, length) == length
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_blending_weights_reproduce_an_unchanged_image():
    image = np.random.default_rng(0).random((70, 90, 3)).astype(np.float32)
    out = restore_tiled(image, lambda pixels, box, index: pixels, tile=32, overlap=12)
    assert np.allclose(out, image, atol=1e-6)
    assert ramp(10, 4, True, True).min() > 0  # every pixel keeps some weight


def test_scaled_tiles_land_in_place():
    image = np.random.default_rng(1).random((40, 50, 1)).astype(np.float32)
    out = restore_tiled(
        image, lambda pixels, box, index: np.kron(pixels, np.ones((2, 2, 1))), tile=24, overlap=8, scale=2
    )
    assert np.allclose(out, np.kron(image, np.ones((2, 2, 1))), atol=1e-6)


def test_tiled_denoising_has_no_seams(astronaut_crop):
    from dip.degrade import add_noise
    from dip.tasks import denoise

    clean = np.concatenate([astronaut_crop, astronaut_crop[:, ::-1]], axis=1)[:, :96]  # 64 x 96
    noisy = add_noise(clean, 25)
    # the fits alone (wiener=False): the Wiener step lowers the error less in the band's detail than
    # elsewhere, in an untiled restoration as much as in a tiled one (1.12 both), which is not a seam
    out = restore_tiled(
        noisy,
        lambda pixels, box, index: denoise(pixels, sigma=25, steps=400, device="cpu", wiener=False),
        tile=64,
        overlap=32,
    )
    error = ((out - clean) ** 2).mean(axis=(0, 2))
    seam = np.zeros(96, bool)
    seam[32:64] = True  # the band where the two tiles meet and are blended
    assert error[seam].mean() <= error[~seam].mean() * 1.1
    noisy_error = ((noisy - clean) ** 2).mean()
    assert error.mean() < noisy_error / 2.5  # and the tiles were really denoised


def test_memory_estimate_matches_the_measured_peak():
    # dip bench speed, 2026-11-26, this CPU: peak resident memory 2315 MB (paper) and 1072 MB
    # (default) for a 512x512 denoising step (benchmarks/results/speed-cpu-2026-11-26-4.md)
    cpu = torch.device("cpu")
    for name, measured in (("paper", 2315), ("default", 1072)):
        mb = estimate(get_preset("denoise", name), (512, 512), 3, cpu).bytes / 2**20
        assert 0.7 * measured < mb < 1.3 * measured, (name, mb)


def test_too_big_for_memory_is_refused_with_a_tile_size():
    preset = get_preset("denoise", "paper")
    with pytest.raises(DipError, match=r"needs about .* GB .* restore it in tiles of \d+ px") as caught:
        check_fits(preset, (4096, 4096), 3, torch.device("cpu"), free=1.5 * 2**30)
    assert "\n" not in str(caught.value)


def test_cli_tiles_and_copies_tiles_without_holes(tmp_path):
    image = np.random.default_rng(2).random((80, 100, 3)).astype(np.float32)
    mask = np.ones((80, 100, 1), np.float32)
    mask[5:15, 5:15] = 0  # one hole, in the first tile only
    write_image(tmp_path / "in.png", Picture(image))
    write_image(tmp_path / "mask.png", Picture(mask))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dip",
            "inpaint",
            str(tmp_path / "in.png"),
            "--mask",
            str(tmp_path / "mask.png"),
            "-o",
            str(tmp_path / "out.png"),
            "--tile",
            "48",
            "--overlap",
            "16",
            "--steps",
            "3",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "estimate: each 48px tile needs about" in done.stderr
    out = read_image(tmp_path / "out.png").pixels
    original = read_image(tmp_path / "in.png").pixels
    assert out.shape == (80, 100, 3)
    assert np.array_equal(out[60:, 60:], original[60:, 60:])  # far from the hole: copied untouched


class _Starts(Callback):
    """Each fit's weights as it starts and as it ends, and its first loss, fit after fit."""

    def __init__(self):
        self.starts: list[dict] = []
        self.ends: list[dict] = []
        self.first_losses: list[float] = []

    def on_start(self, state) -> None:
        self.starts.append({k: v.clone() for k, v in state.net.state_dict().items()})

    def on_step(self, state) -> None:
        if state.step == 1:
            self.first_losses.append(state.loss)

    def on_end(self, state) -> None:
        self.ends.append({k: v.clone() for k, v in state.net.state_dict().items()})


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[name], b[name]) for name in a)


def _four_tiles(restarts: int, warm: bool, preset: str = "default") -> _Starts:
    """A 96 px noisy image in 2x2 tiles of 64 px, fitted one by one (batch=1) for 20 steps (the
    default preset's stop would come far later)."""
    noisy = (np.random.default_rng(0).random((96, 96, 3)) * 0.2 + 0.4).astype(np.float32)
    spy = _Starts()
    options = dict(steps=20, device="cpu", batch=1, restarts=restarts, seed=5, preset=preset)
    dip.run(dip.Denoising(25), noisy, tile=64, overlap=32, warm_tiles=warm, callbacks=[spy], **options)
    return spy


def test_warm_tiles_start_from_the_weights_the_first_tiles_fit_ended_with():
    warm, cold = _four_tiles(1, True), _four_tiles(1, False)
    assert len(warm.starts) == len(cold.starts) == 4
    assert _same(warm.starts[0], cold.starts[0])  # the first tile is fitted as it would be cold
    assert all(_same(start, warm.ends[0]) for start in warm.starts[1:])
    assert all(_same(start, cold.starts[0]) for start in cold.starts[1:])  # one seed: one draw
    # a smooth image: the started tiles begin near their fit, the cold ones from scratch
    assert max(warm.first_losses[1:]) < min(cold.first_losses[1:]) / 3


def test_each_restart_of_a_warm_tile_starts_from_the_same_restart_of_the_first_tile():
    spy = _four_tiles(2, True)
    assert len(spy.starts) == 8  # the first tile's two fits, then each other tile's two
    first, second = spy.ends[0], spy.ends[1]
    assert not _same(first, second)
    for tile in range(1, 4):
        assert _same(spy.starts[2 * tile], first) and _same(spy.starts[2 * tile + 1], second)


def test_tiles_fitted_a_fixed_number_of_steps_start_cold():
    """The paper's preset has no stop: a warm start would only fit further into the noise."""
    spy = _four_tiles(1, True, preset="paper")
    assert all(_same(start, spy.starts[0]) for start in spy.starts[1:])


def test_super_resolution_tiles_start_cold():
    """Its fits ran to their cap warm or cold: a warm start saved nothing there."""
    spy = _Starts()
    low = (np.random.default_rng(0).random((48, 48, 3)) * 0.2 + 0.4).astype(np.float32)
    dip.run(dip.SuperResolution(2), low, tile=32, overlap=16, steps=2, device="cpu", batch=1, callbacks=[spy])
    assert len(spy.starts) == 4
    assert all(_same(start, spy.starts[0]) for start in spy.starts[1:])


def test_the_command_line_can_draw_every_tile_afresh():
    from dip.cli import _recipe, build_parser

    arguments = ["denoise", "in.png", "-o", "out.png", "--sigma", "25", "--tile", "64"]
    warm, _ = _recipe(build_parser().parse_args(arguments))
    cold, _ = _recipe(build_parser().parse_args([*arguments, "--cold-tiles"]))
    assert "warm_tiles" not in warm.options  # dip.run's default: warm
    assert cold.options["warm_tiles"] is False
