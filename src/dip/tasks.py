"""Restoration tasks: numpy in, numpy out, in the style of `skimage.restoration`.

Each task is an operator A plus a preset; `restore` does the rest for all of them: it builds
the network and its input at a size the network accepts, fits, and crops back to the image.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .accel import Acceleration
from .callbacks import EarlyStopping, ReferenceMetrics, StuckDetector, to_numpy_image
from .degrade import clipped_noise_variance
from .errors import DipError
from .fit import Callback, FitResult, fit, mse
from .io import Picture, join_channels, split_channels
from .nets import count_parameters
from .nets.layers import center_crop_to
from .operators import Activation, Blur, Downsampler, Features, Identity, Mask
from .presets import Preset, StopRule, get_preset

NOISE_SCALE = 0.1  # z ~ U[0, 1) * 0.1, as in the paper


@dataclass
class Restoration:
    """A restored image and how it was made."""

    image: np.ndarray  # float32 (H, W, C) in [0, 1]
    preset: Preset
    parameters: int
    device: str
    seconds: float
    fit: FitResult
    metrics: ReferenceMetrics | None = None
    attempts: int = 1  # runs made (more than one when a stuck run was restarted)
    seed: int = 0


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, else the CPU; asking for a missing device is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DipError("--device cuda asked for, but PyTorch sees no CUDA GPU here (use --device auto or cpu)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise DipError(f"unknown device {name!r} (use auto, cpu or cuda)") from None


def padded_size(height: int, width: int, stride: int, min_size: int = 1) -> tuple[int, int]:
    """Smallest size >= (height, width), each side at least `min_size`, that `stride` divides."""
    return tuple(max(-(-side // stride) * stride, min_size) for side in (height, width))


def check_size(height: int, width: int, stride: int) -> None:
    if height < stride or width < stride:
        raise DipError(f"image is {width}x{height} pixels, too small: this network halves it "
                       f"{stride.bit_length() - 1} times and needs at least {stride}x{stride}")


def make_input(kind: str, channels: int, size: tuple[int, int], generator: torch.Generator,
               guide: np.ndarray | None = None) -> torch.Tensor:
    """The network's fixed input z at the padded `size`: uniform noise, a coordinate grid, or a
    guide image (reflect-padded)."""
    height, width = size
    if kind == "noise":
        return torch.rand(1, channels, height, width, generator=generator) * NOISE_SCALE
    if kind == "meshgrid":
        ys = torch.linspace(0, 1, height)
        xs = torch.linspace(0, 1, width)
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        return torch.stack([grid_x, grid_y])[None]
    if kind == "image":
        if guide is None:
            raise ValueError("input kind 'image' needs a guide image")
        return pad_to(to_tensor(guide), size)
    raise ValueError(f"unknown input kind {kind!r}")


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """float (H, W, C) array -> (1, C, H, W) tensor."""
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]


def pad_to(tensor: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Pad an NCHW tensor symmetrically to `size`, mirroring the border (the centre stays put)."""
    extra_h, extra_w = size[0] - tensor.shape[2], size[1] - tensor.shape[3]
    pads = (extra_w // 2, extra_w - extra_w // 2, extra_h // 2, extra_h - extra_h // 2)
    mode = "reflect" if extra_h < tensor.shape[2] and extra_w < tensor.shape[3] else "replicate"
    return nn.functional.pad(tensor, pads, mode=mode) if any(pads) else tensor


def restore(observation: np.ndarray | torch.Tensor, preset: Preset, *, operator: nn.Module | None = None,
            image_size: tuple[int, int] | None = None, out_channels: int | None = None,
            guide: np.ndarray | None = None, steps: int | None = None, seed: int = 0,
            device: str = "auto", reference: np.ndarray | None = None,
            loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = mse,
            noise_variance: float | None = None, early_stop: bool | None = None,
            acceleration: Acceleration | None = None, callbacks: Sequence[Callback] = ()) -> Restoration:
    """Fit the preset's network so that A(f(z)) matches `observation`: a float (h, w, c) image,
    or a tensor already in A's output space (features, for inversion).

    `image_size` and `out_channels` describe the image to produce (default: those of the
    observation). The network works on a canvas padded to a size it accepts; only the centre
    (the image) enters the loss, so no border is lost.

    `early_stop` (default: the preset's choice) adds the preset's automatic stop; with a known
    `noise_variance` of the observation (0-1 scale) it uses the discrepancy rule.
    `acceleration` (default: `Acceleration.default` for the device) sets precision, memory
    layout and compilation.
    """
    started = time.perf_counter()
    dev = resolve_device(device)
    acceleration = acceleration or Acceleration.default(dev)
    acceleration.check(dev)
    height, width = image_size or observation.shape[:2]
    channels = out_channels or observation.shape[2]
    stride = preset.net.stride
    check_size(height, width, stride)
    canvas = padded_size(height, width, stride, preset.net.min_size)
    config = preset.fit if steps is None else dataclasses.replace(preset.fit, steps=steps)
    if config.steps < 1:
        raise DipError(f"--steps must be at least 1, got {config.steps}")

    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = preset.net.build(preset.input_channels, channels)
    z = make_input(preset.input, preset.input_channels, canvas, generator, guide)
    net, z = net.to(dev), z.to(dev)
    target = (observation if torch.is_tensor(observation) else to_tensor(observation)).to(dev)
    operator = (operator or Identity()).to(dev)
    step_generator = torch.Generator(device=dev).manual_seed(seed + 1)

    metrics = None
    if reference is not None:
        if reference.shape[:2] != (height, width) or reference.shape[2] != channels:
            raise DipError(f"reference is {reference.shape[1]}x{reference.shape[0]}x{reference.shape[2]}, "
                           f"the result will be {width}x{height}x{channels}: they must match")
        metrics = ReferenceMetrics(to_tensor(reference).to(dev))
    callbacks = ([metrics] if metrics else []) + [*stopping(preset, early_stop, noise_variance)] + list(callbacks)

    def crop(tensor: torch.Tensor) -> torch.Tensor:
        return center_crop_to(tensor, height, width)

    result = fit(net, z, target, operator, config, loss_fn=loss_fn, crop=crop, generator=step_generator,
                 callbacks=callbacks, acceleration=acceleration)
    return Restoration(to_numpy_image(result.image), preset, count_parameters(net), str(dev),
                       time.perf_counter() - started, result, metrics, seed=seed)


def stopping(preset: Preset, early_stop: bool | None, noise_variance: float | None) -> list[EarlyStopping]:
    """The automatic-stop callback a run gets: the preset's rule, on unless switched off; a preset
    without a rule (the paper's) gets the default rule when `early_stop` is asked for."""
    if early_stop is False or (early_stop is None and preset.stop is None):
        return []
    rule = preset.stop or StopRule()
    return [EarlyStopping(patience=rule.patience, warmup=rule.warmup,
                          noise_variance=noise_variance if rule.discrepancy else None)]


def _run(pixels: np.ndarray, task: str, preset: str | Preset, reference: np.ndarray | None = None,
         **options) -> Restoration:
    """Resolve the preset by name, take the reference's colour channels, and restore."""
    if isinstance(preset, str):
        preset = get_preset(task, preset)
    if reference is not None:
        reference = split_channels(reference).pixels
    return restore(pixels, preset, reference=reference, **options)


def _assemble(done: Restoration, alpha: np.ndarray | None, flat: bool, return_info: bool):
    """Join alpha back to the restored colour channels; (H, W) out if the input was (H, W)."""
    out = join_channels(Picture(done.image, alpha))
    if flat:
        out = out[:, :, 0]
    return (out, done) if return_info else out


def _restore_picture(image: np.ndarray, task: str, preset: str | Preset, return_info: bool,
                     **options) -> np.ndarray | tuple[np.ndarray, Restoration]:
    """Shared wrapper: split off alpha, restore the colour channels, put alpha back, keep shape."""
    picture = split_channels(image)
    return _assemble(_run(picture.pixels, task, preset, **options), picture.alpha, np.ndim(image) == 2,
                     return_info)


def denoise_preset(sigma: float | None, name: str) -> str:
    """The paper used more input noise for strong noise (sigma 50); so does the default."""
    if name in ("paper", "default") and sigma is not None and sigma > 40:
        return f"{name}-sigma50"
    return name


def noise_variance(image: np.ndarray, sigma: float | None) -> float:
    """The observation's noise variance on the 0-1 scale: from `sigma` (0-255 scale) when
    given, less what clipping to [0, 1] took away; else estimated from the image (wavelet
    median absolute deviation, per channel)."""
    if sigma is not None:
        return clipped_noise_variance(image, sigma)
    from skimage.restoration import estimate_sigma

    return float(np.mean(estimate_sigma(image, channel_axis=-1, average_sigmas=False)) ** 2)


def denoise(image: np.ndarray, sigma: float | None = None, *, preset: str = "default",
            steps: int | None = None, seed: int = 0, device: str = "auto",
            reference: np.ndarray | None = None, early_stop: bool | None = None,
            acceleration: Acceleration | None = None,
            callbacks: Sequence[Callback] = (), return_info: bool = False):
    """Remove noise with the Deep Image Prior.

    `image`: (H, W) or (H, W, C) array, C in 1-4 (alpha is kept as is); integers are scaled by
    their type's maximum, floats are taken in [0, 1]. `sigma` (on the 0-255 scale) is optional:
    without it the run is blind (the noise level is estimated for the automatic stop), suited
    to real noise. Returns a float32 array of the same shape.

    >>> from skimage import data
    >>> noisy = data.astronaut()[:64, :64] / 255 + 0.1 * np.random.default_rng(0).normal(size=(64, 64, 3))
    >>> denoise(noisy.clip(0, 1), sigma=25, steps=2, device="cpu").shape
    (64, 64, 3)
    """
    if sigma is not None and not 0 < sigma <= 255:
        raise DipError(f"sigma must be in (0, 255] on the 0-255 scale, got {sigma:g}")
    colour = split_channels(image).pixels
    return _restore_picture(image, "denoise", denoise_preset(sigma, preset) if isinstance(preset, str) else preset,
                            return_info, steps=steps, seed=seed, device=device, reference=reference,
                            early_stop=early_stop, acceleration=acceleration,
                            noise_variance=noise_variance(colour, sigma),
                            callbacks=callbacks)


def deblock(image: np.ndarray, *, preset: str = "paper", steps: int | None = None, seed: int = 0,
            device: str = "auto", reference: np.ndarray | None = None,
            early_stop: bool | None = None, acceleration: Acceleration | None = None,
           callbacks: Sequence[Callback] = (), return_info: bool = False):
    """Remove JPEG compression artifacts (blocking, ringing); same conventions as `denoise`."""
    return _restore_picture(image, "deblock", preset, return_info, steps=steps, seed=seed,
                            device=device, reference=reference, early_stop=early_stop, acceleration=acceleration,
                            callbacks=callbacks)


def sr_preset(factor: int, name: str) -> str:
    """The paper ran x8 longer and with more input noise than x4."""
    return "paper-x8" if name == "paper" and factor >= 8 else name


def super_resolve(image: np.ndarray, factor: int = 4, *, preset: str | Preset = "paper",
                  steps: int | None = None, seed: int = 0, device: str = "auto",
                  reference: np.ndarray | None = None, early_stop: bool | None = None,
            acceleration: Acceleration | None = None, callbacks: Sequence[Callback] = (),
                  return_info: bool = False):
    """Super-resolve a real low-resolution image by `factor` (2, 4 or 8).

    The network draws the high-resolution image; the loss compares its Lanczos-2 downsampling
    (the paper's operator) with `image`. Returns (H * factor, W * factor[, C]); alpha is
    upscaled with bicubic interpolation.
    """
    if factor not in (2, 4, 8):
        raise DipError(f"scale factor must be 2, 4 or 8, got {factor}")
    picture = split_channels(image)
    height, width = picture.size
    options = dict(operator=Downsampler(factor), image_size=(height * factor, width * factor))
    if picture.alpha is not None:
        from skimage.transform import resize

        picture.alpha = resize(picture.alpha, options["image_size"], order=3).clip(0, 1).astype(np.float32)
    done = _run(picture.pixels, "super-resolve", sr_preset(factor, preset) if isinstance(preset, str) else preset,
                steps=steps, seed=seed, device=device, reference=reference, early_stop=early_stop,
                acceleration=acceleration,
                callbacks=callbacks, **options)
    return _assemble(done, picture.alpha, np.ndim(image) == 2, return_info)


def read_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Validate and binarise an inpainting mask: white (>= 0.5) = known, black = hole.

    Accepts (H, W) or (H, W, C) (channels averaged; alpha ignored); returns float (H, W, 1)."""
    mask = split_channels(mask).pixels.mean(axis=2, keepdims=True)
    if mask.shape[:2] != tuple(shape):
        raise DipError(f"mask is {mask.shape[1]}x{mask.shape[0]}, image is {shape[1]}x{shape[0]}: "
                       "they must be the same size")
    binary = (mask >= 0.5).astype(np.float32)
    if binary.all():
        raise DipError("mask has no hole (all white = all known): nothing to inpaint")
    if not binary.any():
        raise DipError("mask is all hole (all black = nothing known): there is nothing to fit")
    return binary


def inpaint(image: np.ndarray, mask: np.ndarray, *, preset: str | Preset = "text",
            steps: int | None = None, seed: int = 0, device: str = "auto",
            reference: np.ndarray | None = None, paste_known: bool = False,
            early_stop: bool | None = None, acceleration: Acceleration | None = None,
           callbacks: Sequence[Callback] = (), return_info: bool = False):
    """Fill the holes of `image` where `mask` is black (0); white (1) marks known pixels.

    The loss sees known pixels only. Presets: text (thin scribbles), blob (one object),
    large-holes (and its -unet / -resnet comparisons), pixels (random missing pixels).
    With `paste_known`, known pixels are copied from the input into the result.
    """
    picture = split_channels(image)
    known = read_mask(mask, picture.size)
    done = _run(picture.pixels, "inpaint", preset, steps=steps, seed=seed, device=device,
                reference=reference, early_stop=early_stop, acceleration=acceleration, callbacks=callbacks,
                operator=Mask(to_tensor(known)))
    if paste_known:
        done.image = np.where(known > 0, picture.pixels, done.image).astype(np.float32)
    return _assemble(done, picture.alpha, np.ndim(image) == 2, return_info)


def deblur(image: np.ndarray, kernel: np.ndarray, *, preset: str | Preset = "default",
           steps: int | None = None, seed: int = 0, device: str = "auto",
           reference: np.ndarray | None = None, early_stop: bool | None = None,
            acceleration: Acceleration | None = None, callbacks: Sequence[Callback] = (),
           return_info: bool = False):
    """Undo a known blur: A is convolution with `kernel` (2-D, normalised to sum 1)."""
    try:
        operator = Blur(kernel)
    except ValueError as error:
        raise DipError(str(error)) from None
    return _restore_picture(image, "deblur", preset, return_info, steps=steps, seed=seed, device=device,
                            reference=reference, early_stop=early_stop, acceleration=acceleration,
                            callbacks=callbacks, operator=operator)


def flash(flash_image: np.ndarray, noflash_image: np.ndarray, *, preset: str | Preset = "paper",
          steps: int | None = None, seed: int = 0, device: str = "auto", attempts: int = 3,
          reference: np.ndarray | None = None, early_stop: bool | None = None,
            acceleration: Acceleration | None = None, callbacks: Sequence[Callback] = (),
          return_info: bool = False):
    """Restore a noisy no-flash photo using the flash photo of the same scene as the network's
    input z: the result has the no-flash lighting with the flash photo's detail.

    A run that gets stuck (no fit after 100 steps; the paper saw flat reddish outputs) is
    restarted with the next seed, up to `attempts` runs in all (a run that is only stuck at
    its last attempt is an error, never an output).
    """
    flash_picture, target = split_channels(flash_image), split_channels(noflash_image)
    if flash_picture.size != target.size:
        raise DipError(f"flash image is {flash_picture.size[1]}x{flash_picture.size[0]}, no-flash image "
                       f"is {target.size[1]}x{target.size[0]}: they must be the same size")
    if flash_picture.pixels.shape[2] != target.pixels.shape[2]:
        raise DipError("flash and no-flash images must both be colour or both grey")
    chosen = get_preset("flash", preset) if isinstance(preset, str) else preset
    check_at = min(100, (steps or chosen.fit.steps) // 2)  # too few steps to judge: no check
    for attempt in range(attempts):
        detector = StuckDetector(to_tensor(target.pixels), at_step=check_at if check_at >= 20 else 0)
        done = _run(target.pixels, "flash", chosen, guide=flash_picture.pixels, steps=steps,
                    seed=seed + attempt, device=device, reference=reference, early_stop=early_stop,
                    acceleration=acceleration,
                    callbacks=[detector, *callbacks])
        done.attempts = attempt + 1
        if not detector.stuck:
            break
    else:
        raise DipError(f"flash/no-flash fit got stuck in all {attempts} attempts (seeds {seed}-{seed + attempts - 1})")
    return _assemble(done, target.alpha, np.ndim(noflash_image) == 2, return_info)


CLASSIFIER_SIZE = 224


def _classifier_operator(make: Callable[[], nn.Module]) -> nn.Module:
    try:
        return make()
    except ValueError as error:
        raise DipError(str(error)) from None


def invert(image: np.ndarray, network: str = "alexnet", layer: str = "conv5", *,
           weights: str | None = None, preset: str | Preset = "paper", steps: int | None = None,
           seed: int = 0, device: str = "auto", callbacks: Sequence[Callback] = (),
           return_info: bool = False):
    """Feature inversion: the 224x224 image whose `network` features at `layer` match those of
    `image` (resized to 224x224), with the DIP network as the image's parameterisation."""
    from skimage.transform import resize

    from .weights import load_classifier

    picture = split_channels(image)
    if picture.pixels.shape[2] != 3:
        picture.pixels = np.repeat(picture.pixels, 3, axis=2)
    classifier = load_classifier(network, weights)
    operator = _classifier_operator(lambda: Features(classifier, layer, CLASSIFIER_SIZE))
    small = resize(picture.pixels, (CLASSIFIER_SIZE, CLASSIFIER_SIZE), anti_aliasing=True).astype(np.float32)
    with torch.no_grad():
        target = operator(to_tensor(small))
    done = _run(target, "invert", preset, operator=operator, image_size=(CLASSIFIER_SIZE,) * 2,
                out_channels=3, steps=steps, seed=seed, device=device, callbacks=callbacks)
    return (done.image, done) if return_info else done.image


def _negative_mean(activation: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
    return -activation.mean()


def visualize(network: str = "mobilenet_v2", layer: str = "logits", unit: int = 0, *,
              weights: str | None = None, preset: str | Preset | None = None, steps: int | None = None,
              seed: int = 0, device: str = "auto", callbacks: Sequence[Callback] = (),
              return_info: bool = False):
    """Activation maximisation: the 224x224 image that most excites channel (or class) `unit`
    of `network` at `layer`, drawn by the DIP network."""
    from .weights import load_classifier

    classifier = load_classifier(network, weights)
    operator = _classifier_operator(lambda: Activation(classifier, layer, unit, CLASSIFIER_SIZE))
    with torch.no_grad():
        try:
            operator(torch.zeros(1, 3, CLASSIFIER_SIZE, CLASSIFIER_SIZE))
        except ValueError as error:
            raise DipError(str(error)) from None
    if preset is None:
        preset = "paper-logits" if layer == "logits" else "paper"
    done = _run(torch.zeros(1), "visualize", preset, operator=operator, image_size=(CLASSIFIER_SIZE,) * 2,
                out_channels=3, steps=steps, seed=seed, device=device, callbacks=callbacks,
                loss_fn=_negative_mean)
    return (done.image, done) if return_info else done.image
