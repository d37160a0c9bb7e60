import numpy as np
import pytest
import torch

import dip
from dip.callbacks import Checkpoint, Snapshots
from dip.canvas import padded_size
from dip.degrade import add_noise
from dip.errors import DipError
from dip.metrics import psnr


@pytest.mark.parametrize("shape", [(37, 53), (37, 53, 1), (37, 53, 3), (53, 37, 4), (32, 32, 3)])
def test_output_has_the_input_shape(shape):
    rng = np.random.default_rng(0)
    image = rng.random(shape).astype(np.float32)
    out = dip.denoise(image, steps=2, device="cpu")
    assert out.shape == image.shape
    assert out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    if len(shape) == 3 and shape[2] == 4:
        assert np.array_equal(out[:, :, 3], image[:, :, 3])  # alpha untouched


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_integer_images_are_scaled(dtype):
    """An integer image restores exactly as the same image in [0, 1] (not clipped to white)."""
    top = np.iinfo(dtype).max
    image = (np.random.default_rng(0).random((40, 40, 3)) * top).astype(dtype)
    as_float = image.astype(np.float64) / top
    assert np.allclose(
        dip.denoise(image, steps=3, device="cpu"), dip.denoise(as_float, steps=3, device="cpu"), atol=1e-6
    )
    assert np.allclose(
        dip.run(dip.Denoising(25), image, method="wavelet").image,
        dip.run(dip.Denoising(25), as_float, method="wavelet").image,
        atol=1e-6,
    )


def test_padding_is_to_the_next_multiple_of_the_stride():
    assert padded_size(37, 64, 32) == (64, 64)
    assert padded_size(65, 32, 32) == (96, 32)
    assert padded_size(32, 32, 32, min_size=64) == (64, 64)  # a 1x1 coarsest level would break BatchNorm
    assert padded_size(40, 300, 64, min_size=192) == (192, 320)


def test_seed_makes_runs_repeatable(astronaut_crop):
    noisy = add_noise(astronaut_crop, 25)
    a = dip.denoise(noisy, steps=5, seed=7, device="cpu")
    b = dip.denoise(noisy, steps=5, seed=7, device="cpu")
    c = dip.denoise(noisy, steps=5, seed=8, device="cpu")
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_too_small_and_bad_sigma_are_refused():
    with pytest.raises(DipError, match="too small"):
        dip.denoise(np.zeros((20, 40, 3)), steps=1, device="cpu")
    with pytest.raises(DipError, match="sigma"):
        dip.denoise(np.zeros((40, 40, 3)), sigma=-3, steps=1, device="cpu")


@pytest.mark.slow
def test_known_sigma_gives_the_noise_variance_left_after_clipping():
    """The automatic stop waits for the data term to reach the noise level: with sigma given,
    that is the variance of clipped noise, which clipping makes smaller than sigma^2; fitting the
    clipped mean (the default), the residual about that mean, smaller still."""
    from skimage import data

    from dip.operators import ClippedMean

    clean = (data.astronaut()[:128, :128] / 255).astype(np.float32)
    for sigma, nominal_excess in ((25, 1.05), (50, 1.15)):
        noisy = add_noise(clean, sigma)
        actual = float(np.mean((noisy - clean) ** 2))
        mean = ClippedMean(sigma / 255)(torch.from_numpy(clean)).numpy()
        about_mean = float(np.mean((noisy - mean) ** 2))
        assert dip.Denoising(sigma, clipped=False).known_noise_variance(noisy) == pytest.approx(actual, rel=0.02)
        assert dip.Denoising(sigma).known_noise_variance(noisy) == pytest.approx(about_mean, rel=0.02)
        assert about_mean < actual < (sigma / 255) ** 2 / nominal_excess

    assert [dip.Denoising(s).preset_name("default") for s in (25, 50, None)] == [
        "default",
        "default-sigma50",
        "default",
    ]


def test_denoising_gains_several_db(astronaut_crop):
    noisy = add_noise(astronaut_crop, 25)
    out, info = dip.denoise(
        noisy, sigma=25, preset="paper", steps=300, device="cpu", reference=astronaut_crop, return_info=True
    )
    before, after = psnr(noisy, astronaut_crop), psnr(out, astronaut_crop)
    assert after - before > 4.0, (before, after)
    assert info.metrics.history[-1][1] == pytest.approx(after, abs=0.01)
    assert info.parameters == 2_217_831


def test_snapshots_and_checkpoint_resume(tmp_path, astronaut_crop):
    noisy = add_noise(astronaut_crop[:32, :32], 25)
    shots = Snapshots(every=2, directory=tmp_path / "shots")
    full = dip.denoise(noisy, steps=6, device="cpu", callbacks=[shots])
    assert [f.step for f in shots.frames] == [2, 4, 6]
    assert all(f.path.exists() for f in shots.frames)
    # a run checkpointed at step 4, then resumed, gives the uninterrupted result
    ckpt = tmp_path / "run.pt"
    dip.denoise(noisy, steps=4, device="cpu", callbacks=[Checkpoint(ckpt, every=4)])
    resumed = dip.denoise(noisy, steps=6, device="cpu", callbacks=[Checkpoint(ckpt, every=100, resume=True)])
    assert np.array_equal(full, resumed)


def test_clipped_noise_data_term_keeps_a_bright_sky_bright():
    """A near-white area under clipped noise: the plain fit returns the clipped noise's mean
    (too dark); fitting E[clip(x + n)] returns the level itself."""
    import dip

    ramp = np.linspace(0.95, 0.99, 64, dtype=np.float32)
    clean = np.repeat(np.repeat(ramp[None, :, None], 64, axis=0), 3, axis=2)
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape), 0, 1).astype(np.float32)
    options = dict(steps=300, device="cpu", early_stop=False)
    plain = dip.run(dip.Denoising(25, clipped=False), noisy, **options).image
    clipped = dip.run(dip.Denoising(25), noisy, **options).image  # the default with a sigma
    assert clean.mean() - plain.mean() > 0.02  # the clipped mean: about 0.94 for 0.97
    assert abs(clipped.mean() - clean.mean()) < 0.01
