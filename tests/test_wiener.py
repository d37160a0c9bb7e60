"""The Wiener step after a denoising fit (`dip.wiener`): an exact transform, what the pilot says
is kept, memory-bounded strips that change nothing, and who asks for it (presets, the problem)."""

import dataclasses

import numpy as np
import pytest
import torch

import dip
import dip.wiener as wiener_module
from dip.degrade import add_noise
from dip.metrics import psnr
from dip.presets import get_preset
from dip.wiener import wiener


@pytest.fixture
def noisy(astronaut_crop):
    return add_noise(astronaut_crop, 25, seed=0)


def test_gains_of_one_give_the_noisy_image_back(noisy):
    """With sigma ~ 0 every coefficient is kept: the overlap-add of the blocks is exact, grouped or not,
    whatever the references' step."""
    for match, step in ((False, 3), (True, 3), (True, 2), (True, 1)):
        out = wiener(noisy, noisy, 1e-6, clipped=False, passes=1, match=match, step=step)
        assert np.abs(out - noisy).max() < 1e-4


def test_a_flat_grey_pilot_keeps_neither_colour_nor_detail(noisy):
    """Its blocks have no colour and no frequency but the mean: only the blocks' brightness stays."""
    out = wiener(noisy, np.full_like(noisy, 0.5), 25 / 255, clipped=False, passes=1, blend=0.0)
    assert np.abs(out - out[:, :, :1]).max() < 1e-5  # grey
    detail = lambda image: float(np.abs(np.diff(image, axis=1)).mean())  # noqa: E731
    assert detail(out) < 0.1 * detail(noisy)
    assert abs(float(out.mean()) - float(noisy.mean())) < 0.01


def test_a_good_pilot_beats_both_itself_and_the_noisy_image(astronaut_crop, noisy):
    """A blurred truth as pilot: the filter restores detail the pilot lacks."""
    from scipy.ndimage import gaussian_filter

    pilot = gaussian_filter(astronaut_crop, sigma=(1, 1, 0))
    out = wiener(noisy, pilot, 25 / 255)
    # 28.83 against 27.85 (28.41 with the pilot as given)
    assert psnr(out, astronaut_crop) > psnr(pilot, astronaut_crop) + 0.25
    assert psnr(out, astronaut_crop) > psnr(noisy, astronaut_crop) + 7


def test_the_noisy_image_blended_into_a_smooth_pilot_brings_back_detail(astronaut_crop, noisy):
    """The first pass's pilot is `pilot + share * (noisy - pilot)`, the share `blend_for` sigma
    (0.8 sigma on [0, 1]) unless given: on a blurred pilot, the step keeps more of the detail
    the pilot lacks."""
    from scipy.ndimage import gaussian_filter

    from dip.wiener import blend_for

    pilot = gaussian_filter(astronaut_crop, sigma=(1, 1, 0))
    share = blend_for(25 / 255)
    blended = wiener(noisy, pilot, 25 / 255)
    assert np.array_equal(blended, wiener(noisy, pilot, 25 / 255, blend=share))
    assert np.abs(blended - wiener(noisy, pilot + share * (noisy - pilot), 25 / 255, blend=0.0)).max() < 1e-5
    as_given = wiener(noisy, pilot, 25 / 255, blend=0.0)
    assert psnr(blended, astronaut_crop) > psnr(as_given, astronaut_crop) + 0.1


def test_grey_filtering_keeps_the_pilots_colour_differences(astronaut_crop, noisy):
    """`colour=False` filters the channels' mean only: the result differs from the pilot by the
    same amount in every channel (where nothing is clipped), and still restores detail."""
    from scipy.ndimage import gaussian_filter

    pilot = 0.25 + 0.5 * gaussian_filter(astronaut_crop, sigma=(1, 1, 0))  # nothing near 0 or 1
    out = wiener(noisy, pilot, 25 / 255, clipped=False, passes=1, colour=False, blend=0.0)
    change = out - pilot
    assert np.abs(change - change.mean(axis=2, keepdims=True)).max() < 1e-5
    assert np.abs(change).mean() > 0.01


def test_larger_blocks_are_exact_too(noisy):
    out = wiener(noisy, noisy, 1e-6, clipped=False, passes=1, block=16)
    assert np.abs(out - noisy).max() < 1e-4
    assert np.array_equal(wiener(noisy[:12, :12], noisy[:12, :12] * 0, 0.1, block=16), noisy[:12, :12] * 0)


def test_strips_give_the_whole_image_result(noisy, monkeypatch):
    whole = wiener(noisy, noisy * 0.5 + 0.25, 25 / 255, match=False)
    monkeypatch.setattr(wiener_module, "_ELEMENTS", 3 * 64 * 64 * 5)  # 5 rows of blocks a strip
    assert np.abs(wiener(noisy, noisy * 0.5 + 0.25, 25 / 255, match=False) - whole).max() < 1e-5


def test_grey_images_and_images_smaller_than_a_block(noisy):
    grey = noisy[:, :, :1]
    assert wiener(grey, grey, 0.1).shape == grey.shape
    tiny = noisy[:5, :5]
    assert np.array_equal(wiener(tiny, tiny * 0, 0.1), tiny * 0)


def test_the_default_refines_and_the_paper_preset_does_not(astronaut_crop, noisy):
    problem = dip.Denoising(25)
    refined = dip.run(problem, noisy, steps=150, seed=0)
    raw = dip.run(dip.Denoising(25, wiener=False), noisy, steps=150, seed=0)
    assert refined.refined and not raw.refined and "refined" in refined.summary()
    assert psnr(refined.image, astronaut_crop) > psnr(raw.image, astronaut_crop) + 1  # 27.74 against 25.73
    assert np.array_equal(refined.unrefined, raw.image) and raw.unrefined is None  # the same fit, kept
    paper = dataclasses.replace(get_preset("denoise", "paper"), net=get_preset("denoise", "default").net)
    assert not paper.refine and not dip.run(problem, noisy, preset=paper, steps=2).refined
    assert not dip.run(dip.Denoising(), noisy, steps=2).refined  # blind: real noise is not white
    assert dip.run(dip.Denoising(50), noisy, steps=2).refined  # +0.63 dB at sigma 50 on 256 px crops
    assert get_preset("denoise", "best").refine


def test_ensembles_and_tiles_keep_what_the_fits_gave_without_it(noisy):
    """The unrefined result goes through the mean of restarts and the blend of tiles as the result does."""
    problem = dip.Denoising(25)
    mean = dip.run(problem, noisy, steps=3, seed=0, restarts=2, batch=1)  # batched float32 differs: test_batched
    fits = [dip.run(dip.Denoising(25, wiener=False), noisy, steps=3, seed=seed).image for seed in (0, 1)]
    assert mean.refined and np.abs(mean.unrefined - (fits[0] + fits[1]) / 2).max() < 1e-5
    tiled = dip.run(problem, noisy, steps=3, seed=0, tile=48, overlap=8)
    assert tiled.refined and tiled.unrefined.shape == tiled.image.shape == noisy.shape
    assert psnr(tiled.unrefined, tiled.image) < 40  # a different image: the step ran on each tile


def test_the_command_line_turns_it_off(tmp_path, noisy):
    from PIL import Image

    from dip.cli import main

    source = tmp_path / "noisy.png"
    Image.fromarray(np.round(noisy * 255).astype(np.uint8)).save(source)
    assert (
        main(["denoise", str(source), "--sigma", "25", "--steps", "2", "--no-wiener", "-o", str(tmp_path / "a.png")])
        == 0
    )
    assert (tmp_path / "a.png").exists()


def test_the_problems_step_is_the_matched_one_in_8x8_blocks_at_every_sigma(astronaut_crop):
    """The problem's step groups blocks (BM3D's Wiener stage) in 8x8 blocks at sigma 25 and 50, a
    reference every second pixel up to sigma 40 and every third above (`step_for`); without
    matching, 16x16 blocks above sigma 40 (`block_for`)."""
    from scipy.ndimage import gaussian_filter

    pilot = gaussian_filter(astronaut_crop, sigma=(1, 1, 0))
    for sigma, step, other in ((25, 2, 3), (50, 3, 2)):
        noisy = add_noise(astronaut_crop, sigma, seed=0)
        refined = dip.Denoising(sigma).refined(pilot, noisy)
        assert np.array_equal(refined, wiener(noisy, pilot, sigma / 255, block=8, match=True, step=step))
        assert np.abs(refined - wiener(noisy, pilot, sigma / 255, step=other)).max() > 1e-3
        assert np.abs(refined - wiener(noisy, pilot, sigma / 255, match=False)).max() > 0.01
    noisy = add_noise(astronaut_crop, 50, seed=0)
    unmatched = wiener(noisy, pilot, 50 / 255, match=False)
    assert np.array_equal(unmatched, wiener(noisy, pilot, 50 / 255, block=16, match=False))


def test_matched_wiener_beats_the_unmatched_step_on_a_noisy_pilot():
    """Block matching (BM3D's Wiener stage) averages over similar blocks: on a repeating pattern
    with a noisy pilot it must do better than the block-by-block step."""
    y, x = np.mgrid[0:64, 0:64]
    clean = np.repeat((0.5 + 0.3 * np.sin(x / 2.0) * np.cos(y / 3.0))[..., None], 3, axis=2)
    noisy = add_noise(clean, 25, seed=0)
    pilot = np.clip(clean + np.random.default_rng(1).normal(0, 0.05, clean.shape), 0, 1)
    plain = psnr(wiener(noisy, pilot, 25 / 255, match=False), clean)
    matched = psnr(wiener(noisy, pilot, 25 / 255, match=True), clean)
    assert matched > plain + 0.3


def test_matched_bands_give_the_whole_image_result(monkeypatch):
    """Bands of reference rows (memory bounded at any height) change nothing but float sums."""
    from skimage import data

    rng = np.random.default_rng(0)
    tall = data.astronaut()[:200, 180:244] / 255.0
    clean = np.clip(tall + rng.normal(0, 0.01, tall.shape), 0, 1).astype(np.float32)  # no tied matches
    noisy = add_noise(clean, 25, seed=0)
    whole = wiener(noisy, clean, 25 / 255, match=True, passes=1)
    monkeypatch.setattr(wiener_module, "_BAND_ELEMENTS", 1)  # the narrowest bands: 46 rows of references
    assert np.abs(wiener(noisy, clean, 25 / 255, match=True, passes=1) - whole).max() < 1e-5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_step_runs_on_the_fits_device_with_the_cpus_result(astronaut_crop, noisy):
    from scipy.ndimage import gaussian_filter

    pilot = gaussian_filter(astronaut_crop, sigma=(1, 1, 0))
    for match in (False, True):
        on_cpu = wiener(noisy, pilot, 25 / 255, match=match)
        assert np.abs(wiener(noisy, pilot, 25 / 255, match=match, device="cuda") - on_cpu).max() < 1e-3


@pytest.fixture
def blurred(astronaut_crop):
    from dip.degrade import blur
    from dip.operators import gaussian_kernel

    kernel = gaussian_kernel(1.5)
    return kernel, add_noise(blur(astronaut_crop, kernel), 2, seed=0)


@pytest.mark.parametrize("shape", [(3, 5), (2, 4), (4, 1)])
def test_the_blur_transfer_function_is_the_blurs_own(astronaut_crop, shape):
    """Away from the borders (which the blur replicates and the Fourier transform wraps), the
    transfer function times the image's spectrum is the blurred image, for kernels of odd and
    even sides; and the NumPy blur is the operator's."""
    from dip.degrade import blur
    from dip.operators import Blur
    from dip.wiener import transfer

    kernel = np.random.default_rng(0).random(shape)
    grey = astronaut_crop[:, :, :1]
    blurred = blur(grey, kernel)[:, :, 0]
    periodic = np.fft.ifft2(np.fft.fft2(grey[:, :, 0]) * transfer(kernel, grey.shape[:2])).real
    assert np.abs(periodic - blurred)[4:-4, 4:-4].max() < 1e-5
    operator = Blur(kernel)(torch.from_numpy(grey).permute(2, 0, 1)[None])[0, 0].numpy()
    assert np.abs(operator - blurred).max() < 1e-5


def test_the_deconvolution_step_sharpens_a_smooth_pilot(astronaut_crop, blurred):
    """A DIP fit stopped early is smoother than the sharp image; so are these pilots, the truth
    blurred by 1 and 1.5 px: 27.85 -> 28.70 and 25.59 -> 27.46 dB here."""
    from scipy.ndimage import gaussian_filter

    from dip.wiener import deconvolve

    kernel, observed = blurred
    for width, gain in ((1.0, 0.6), (1.5, 1.6)):
        pilot = gaussian_filter(astronaut_crop, (width, width, 0))
        corrected = deconvolve(observed, pilot, kernel, 2 / 255)
        assert psnr(corrected, astronaut_crop) > psnr(pilot, astronaut_crop) + gain


def test_the_residual_bound_keeps_a_nearly_sharp_pilot_under_a_strong_blur(astronaut_crop):
    """Under a 3 px blur the truth blurred by 0.7 px is a better image than the data can show: its
    residual is mostly noise, and the bound leaves it nearly alone (30.73 -> 30.01 dB here), where
    the pilot's spectrum alone lets the noise in (28.70)."""
    from scipy.ndimage import gaussian_filter

    from dip.degrade import blur
    from dip.operators import gaussian_kernel
    from dip.wiener import deconvolve

    kernel = gaussian_kernel(3.0)
    observed = add_noise(blur(astronaut_crop, kernel), 2, seed=0)
    pilot = gaussian_filter(astronaut_crop, (0.7, 0.7, 0))
    bounded = psnr(deconvolve(observed, pilot, kernel, 2 / 255), astronaut_crop)
    unbounded = psnr(deconvolve(observed, pilot, kernel, 2 / 255, residual_bound=False), astronaut_crop)
    assert bounded > psnr(pilot, astronaut_crop) - 1 and bounded > unbounded + 1


def test_deblurring_steps_with_a_noise_floor_on_a_noiseless_image(astronaut_crop):
    """No noise at all: the step assumes 1/255, not the estimate (~0), and keeps a good pilot
    nearly as it is under a 3 px blur (27.85 -> 27.10 dB here; 23.62 at 8-bit rounding's level)."""
    from scipy.ndimage import gaussian_filter

    from dip.degrade import blur
    from dip.operators import gaussian_kernel
    from dip.wiener import deconvolve

    kernel = gaussian_kernel(3.0)
    problem, observed = dip.Deblurring(kernel), blur(astronaut_crop, kernel)
    pilot = gaussian_filter(astronaut_crop, (1, 1, 0))
    assert problem.noise_sigma(observed) == pytest.approx(1 / 255)
    floored = psnr(problem.refined(pilot, observed), astronaut_crop)
    assert floored > psnr(pilot, astronaut_crop) - 1
    rounding = psnr(deconvolve(observed, pilot, kernel, 1 / (255 * np.sqrt(12))), astronaut_crop)
    assert rounding < floored - 2


def test_deblurring_knows_or_estimates_its_noise(blurred):
    kernel, observed = blurred
    assert dip.Deblurring(kernel).noise_sigma(observed) * 255 == pytest.approx(2, rel=0.15)
    assert dip.Deblurring(kernel, sigma=3).noise_sigma(observed) == pytest.approx(3 / 255)
    with pytest.raises(dip.DipError, match="sigma must be in"):
        dip.Deblurring(kernel, sigma=0)
