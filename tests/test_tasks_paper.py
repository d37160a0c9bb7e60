"""Every task of the paper (and deblurring) has a real effect on a small input in a short run."""

import numpy as np
import pytest
import torch

import dip.tasks as T
from dip.baselines import upscale
from dip.degrade import add_noise, downscale, drop_pixels
from dip.errors import DipError
from dip.metrics import psnr
from dip.operators import Blur, Downsampler, gaussian_kernel, lanczos_kernel_1d
from dip.problems import to_tensor


def reference_lanczos_kernel(factor, support=2):
    """The paper code's 2-D kernel (get_kernel with phase 0.5), written out as a test oracle."""
    width = 4 * factor + 1
    kernel = np.zeros((width - 1, width - 1))
    center = (width + 1) / 2
    for i in range(1, width):
        for j in range(1, width):
            value = 1.0
            for d in (abs(i + 0.5 - center) / factor, abs(j + 0.5 - center) / factor):
                if d != 0:
                    value *= support * np.sin(np.pi * d) * np.sin(np.pi * d / support) / (np.pi**2 * d * d)
            kernel[i - 1, j - 1] = value
    return kernel / kernel.sum()


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_downsampler_is_the_papers(factor):
    k = lanczos_kernel_1d(factor)
    assert len(k) == 4 * factor
    assert np.allclose(np.outer(k, k), reference_lanczos_kernel(factor), atol=1e-12)
    x = torch.rand(1, 3, 8 * factor, 12 * factor)
    y = Downsampler(factor)(x)
    assert y.shape == (1, 3, 8, 12)
    # the same as a dense 2-D convolution with replication padding (the reference's module)
    pad = (4 * factor - factor) // 2
    dense = torch.nn.functional.conv2d(
        torch.nn.functional.pad(x, (pad,) * 4, mode="replicate"),
        torch.from_numpy(reference_lanczos_kernel(factor)).float().expand(3, 1, 4 * factor, 4 * factor),
        stride=factor,
        groups=3,
    )
    assert torch.allclose(y, dense, atol=1e-5)


@pytest.mark.parametrize("factor, shape", [(2, (10, 14)), (4, (36, 20)), (8, (64, 48))])
def test_lanczos3_downsampler_is_pillows_resize(factor, shape):
    """`border="renormalise"` with support 3 is Pillow's LANCZOS resize, borders included (the
    replicated border of the paper's module is not)."""
    from PIL import Image

    x = np.random.default_rng(factor).random(shape).astype(np.float32)
    pillow = np.asarray(Image.fromarray(x, "F").resize((shape[1] // factor, shape[0] // factor), Image.LANCZOS))
    ours = Downsampler(factor, 3, "renormalise")(torch.from_numpy(x)[None, None])[0, 0].numpy()
    assert np.abs(ours - pillow).max() < 1e-5
    replicated = Downsampler(factor, 3)(torch.from_numpy(x)[None, None])[0, 0].numpy()
    assert np.abs(replicated - pillow).max() > 1e-3


def test_super_resolution_kernel_names_the_refine_steps_downscale():
    """`kernel` is how the low-resolution image was made (the refine step's operator); the fit
    goes through the paper's operator either way, so the fits are the same and shared."""
    from dip.problems import SuperResolution

    hr, lr = downscale(np.random.default_rng(0).random((64, 64, 3)).astype(np.float32), 8)
    problems = {kernel: SuperResolution(8, kernel=kernel) for kernel in ("lanczos2", "lanczos3")}
    seen = {kernel: p.downscale()(to_tensor(hr))[0].numpy().transpose(1, 2, 0) for kernel, p in problems.items()}
    assert np.abs(seen["lanczos3"] - lr).max() < 1.5 / 255  # Pillow made lr, on 8-bit values
    assert np.abs(seen["lanczos2"] - lr).max() > 4 / 255
    fitted = [p.build_operator()(to_tensor(hr)) for p in problems.values()]
    assert torch.equal(*fitted)
    assert problems["lanczos2"].describe() != problems["lanczos3"].describe()
    assert (
        problems["lanczos2"].describe_fit()
        == problems["lanczos3"].describe_fit()
        == {
            "problem": "super-resolve",
            "factor": 8,
        }
    )
    with pytest.raises(DipError, match="unknown kernel 'bicubic'; choose from lanczos2, lanczos3"):
        SuperResolution(4, kernel="bicubic")


def test_super_resolution_refined_moves_towards_the_truth():
    """The refine step (the nearest image that downscales to the observation, clipped) brings
    bicubic closer to the true image when the operator made the observation."""
    from skimage import data

    from dip.problems import SuperResolution

    hr, lr = downscale((data.chelsea()[60:124, 120:184] / 255.0).astype(np.float32), 4)
    problem, guess = SuperResolution(4), upscale(lr, 4, "bicubic")
    moved = problem.refined(guess, lr)
    assert moved.shape == hr.shape and moved.min() >= 0 and moved.max() <= 1
    assert psnr(moved, hr) > psnr(guess, hr) + 0.25  # measured: 26.56 -> 26.85 dB
    back = problem.downscale()(to_tensor(moved))[0].numpy().transpose(1, 2, 0)
    assert np.abs(back - lr).max() < 1.5 / 255  # consistent but for the clipping


def test_blur_keeps_size_and_flat_images():
    blur = Blur(gaussian_kernel(1.5))
    flat = torch.full((1, 3, 20, 30), 0.4)
    assert torch.allclose(blur(flat), flat)


@pytest.mark.slow
def test_super_resolution_x4_beats_interpolation():
    """On a 64x64 crop the paper preset passes bilinear within 500 steps; it needs ~800-1000 to
    pass bicubic there (measured: 26.41 dB at 500 steps vs bicubic 26.56), which the benchmark
    suite checks on the paper's images instead."""
    from skimage import data

    hr, lr = downscale((data.chelsea()[60:124, 120:184] / 255.0).astype(np.float32), 4)
    out = T.super_resolve(lr, 4, steps=500, device="cpu")
    assert out.shape == hr.shape
    assert psnr(out, hr) > psnr(upscale(lr, 4, "bilinear"), hr) + 0.4


def test_super_resolution_refuses_odd_factors():
    with pytest.raises(DipError, match="2, 4 or 8"):
        T.super_resolve(np.zeros((16, 16, 3)), 3, steps=1)


@pytest.mark.slow
def test_inpainting_fills_holes(astronaut_crop):
    mask = np.ones((64, 64, 1), np.float32)
    mask[::6] = 0
    mask[:, ::7] = 0  # a grid of thin holes, like text
    out = T.inpaint(astronaut_crop * mask, mask, steps=150, device="cpu")
    holes = mask[..., 0] == 0
    # holes filled close to the truth: better than the masked input and than the mean colour
    mean_fill = np.where(mask > 0, astronaut_crop, astronaut_crop[~holes].mean(axis=0))
    assert psnr(out[holes], astronaut_crop[holes]) > psnr(mean_fill[holes], astronaut_crop[holes]) + 5


def test_inpainting_grey_pixels_preset_keeps_known_pixels_unless_asked(astronaut_crop):
    grey = astronaut_crop.mean(axis=2)
    masked, mask = drop_pixels(grey[:, :, None], 0.5, seed=0)
    out = T.inpaint(masked[:, :, 0], mask, preset="pixels", steps=3, device="cpu")
    assert out.shape == grey.shape
    known = mask[..., 0] > 0
    assert np.array_equal(out[known], masked[..., 0][known])
    fitted = T.inpaint(masked[:, :, 0], mask, preset="pixels", steps=3, device="cpu", paste_known=False)
    assert np.abs(fitted[known] - masked[..., 0][known]).max() > 0.01  # the network's values
    assert np.array_equal(fitted[~known], out[~known])


@pytest.mark.parametrize(
    "mask, message",
    [
        (np.ones((64, 64)), "no hole"),
        (np.zeros((64, 64)), "all hole"),
        (np.ones((32, 64)), "same size"),
    ],
)
def test_bad_masks(astronaut_crop, mask, message):
    with pytest.raises(DipError, match=message):
        T.inpaint(astronaut_crop, mask, steps=1)


@pytest.mark.slow
def test_flash_no_flash_removes_noise_and_keeps_the_lighting(astronaut_crop):
    truth = 0.6 * astronaut_crop  # the dim ambient lighting we want
    noflash = add_noise(truth, 20)
    flash_image = astronaut_crop**0.6  # bright, differently lit, but noise-free
    out, info = T.flash(flash_image, noflash, steps=120, device="cpu", return_info=True)
    assert psnr(out, truth) > psnr(noflash, truth) + 6
    assert info.attempts == 1


def test_flash_restarts_a_stuck_run_then_gives_up_and_a_short_run_is_not_judged(astronaut_crop):
    from dataclasses import replace

    from dip.nets import SkipSpec
    from dip.presets import get_preset

    paper = get_preset("flash", "paper")
    small = SkipSpec(channels_down=(8,) * 5, channels_up=(8,) * 5, channels_skip=(4,) * 5)
    frozen = replace(paper, net=small, fit=replace(paper.fit, lr=0.0))  # can never fit: always "stuck"
    with pytest.raises(DipError, match="stuck in all 3 attempts"):
        T.flash(astronaut_crop, astronaut_crop, preset=frozen, steps=200, device="cpu")
    out, info = T.flash(astronaut_crop, astronaut_crop, preset=frozen, steps=50, device="cpu", return_info=True)
    assert info.attempts == 1 and info.fit.steps_run == 50


def test_flash_sizes_must_match(astronaut_crop):
    with pytest.raises(DipError, match="same size"):
        T.flash(astronaut_crop, astronaut_crop[:40], steps=1)


@pytest.mark.slow
def test_deblurring_sharpens(astronaut_crop):
    kernel = gaussian_kernel(2.0)
    blurred = Blur(kernel)(to_tensor(astronaut_crop))[0].permute(1, 2, 0).numpy()
    blurred = add_noise(blurred, 2.55)
    out = T.deblur(blurred, kernel, steps=500, device="cpu")
    assert psnr(out, astronaut_crop) > psnr(blurred, astronaut_crop) + 0.3


def test_inpainting_refined_adds_the_detail_the_fit_missed_at_known_pixels():
    """A fit that misses fine detail everywhere (here: the truth blurred) misses it at the known
    pixels too; the refine step fills half of that error into the holes, bringing them closer to
    the truth, and leaves the known pixels to `finish`."""
    from scipy.ndimage import gaussian_filter
    from skimage import data

    from dip.problems import Inpainting

    truth = (data.chelsea()[60:188, 120:248].mean(axis=2, keepdims=True) / 255).astype(np.float32)
    fit = gaussian_filter(truth, (1, 1, 0))
    known = np.random.default_rng(0).random(truth.shape[:2]) >= 0.5
    problem = Inpainting(known)
    refined = problem.refined(fit, truth * known[:, :, None])
    assert refined.shape == truth.shape and refined.dtype == np.float32
    assert np.array_equal(refined[known], fit[known])
    holes = ~known
    assert psnr(refined[holes], truth[holes]) > psnr(fit[holes], truth[holes]) + 0.2  # measured: 30.66 -> 30.94 dB
