"""Classical methods to compare with. Every baseline is called the same way,
`method(observation, problem) -> image` (numpy in, numpy out, float (H, W, C) in [0, 1]); the
problem (`dip.problems`) says what is known (sigma, factor, mask, kernel). `dip.run(problem,
observation, method=NAME)` runs them as it runs the Deep Image Prior."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import numpy as np
from skimage import restoration
from skimage.transform import resize

ORDERS = {"nearest": 0, "bilinear": 1, "bicubic": 3}


def upscale(image: np.ndarray, factor: int, method: str = "bicubic") -> np.ndarray:
    """Interpolate (H, W, C) up by `factor`: scikit-image splines, or Pillow's Lanczos."""
    if method == "lanczos":
        from PIL import Image

        ints = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
        pil = Image.fromarray(ints[:, :, 0] if ints.shape[2] == 1 else ints)
        big = np.asarray(pil.resize((image.shape[1] * factor, image.shape[0] * factor), Image.Resampling.LANCZOS))
        return (big.reshape(big.shape[0], big.shape[1], -1) / 255.0).astype(np.float32)
    shape = (image.shape[0] * factor, image.shape[1] * factor, image.shape[2])
    return resize(image, shape, order=ORDERS[method], mode="edge", anti_aliasing=False).clip(0, 1).astype(np.float32)


def _sigma01(image: np.ndarray, problem) -> float:
    """Noise standard deviation on [0, 1]: the given one, or scikit-image's wavelet estimate."""
    sigma = getattr(problem, "sigma", None)  # deblocking knows no level: estimated
    if sigma is not None:
        return sigma / 255
    return float(np.mean(restoration.estimate_sigma(image, channel_axis=-1)))


def _channels(function: Callable[[np.ndarray], np.ndarray], image: np.ndarray, margin: int = 0) -> np.ndarray:
    """`function` on each channel; with a `margin`, on the channel mirrored outwards by that many
    pixels and cropped back (deconvolution otherwise assumes a black outside and rings inwards
    from the border: 16 dB instead of 28 for Richardson-Lucy on a 96 px crop)."""

    def one(channel: np.ndarray) -> np.ndarray:
        if not margin:
            return function(channel)
        padded = np.pad(channel, margin, mode="reflect")
        return function(padded)[margin:-margin, margin:-margin]

    return np.stack([one(image[:, :, c]) for c in range(image.shape[2])], axis=2)


def _margin(image: np.ndarray, kernel: np.ndarray) -> int:
    """Twice the kernel's size, at most what a mirror of the image can give."""
    return min(2 * max(kernel.shape), image.shape[0] - 1, image.shape[1] - 1)


def nlm(image: np.ndarray, problem) -> np.ndarray:
    sigma = _sigma01(image, problem)
    return restoration.denoise_nl_means(
        image, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True, channel_axis=-1
    )


def tv(image: np.ndarray, problem) -> np.ndarray:
    return restoration.denoise_tv_chambolle(image, weight=0.7 * _sigma01(image, problem), channel_axis=-1)


def wavelet(image: np.ndarray, problem) -> np.ndarray:
    return restoration.denoise_wavelet(
        image, sigma=_sigma01(image, problem), channel_axis=-1, convert2ycbcr=image.shape[2] == 3, rescale_sigma=True
    )


def cbm3d(image: np.ndarray, problem) -> np.ndarray:
    import bm3d

    sigma = _sigma01(image, problem)
    if image.shape[2] == 3:
        return bm3d.bm3d_rgb(image, sigma)
    return bm3d.bm3d(image[:, :, 0], sigma)[:, :, None]


def bicubic(image: np.ndarray, problem) -> np.ndarray:
    return upscale(image, problem.factor, "bicubic")


def lanczos(image: np.ndarray, problem) -> np.ndarray:
    return upscale(image, problem.factor, "lanczos")


def biharmonic(image: np.ndarray, problem) -> np.ndarray:
    return restoration.inpaint_biharmonic(image, problem.mask[:, :, 0] == 0, channel_axis=-1)


FILL_BLOCK, FILL_MARGIN = 256, 16  # px: `fill_small_holes` solves blocks this big, each seen with this margin


def fill_small_holes(image: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """(H, W, C) `image` with its `holes` ((H, W) bool) filled biharmonically, block by block.

    One solve for a whole photo grows faster than its size; a hole a few pixels wide depends
    only on its neighbourhood, so blocks of `FILL_BLOCK` px, each solved with `FILL_MARGIN` px
    around it, give the same values (to about 1e-3 on random values in [0, 1]) in linear time.
    Large holes need the whole solve (`biharmonic`).

    >>> rng = np.random.default_rng(0)
    >>> image, holes = rng.random((300, 300, 1)), rng.random((300, 300)) < 0.5
    >>> whole = restoration.inpaint_biharmonic(image, holes, channel_axis=-1)
    >>> float(np.abs(fill_small_holes(image, holes) - whole).max()) < 1e-3
    True
    """
    height, width = holes.shape
    out = image.copy()
    for top in range(0, height, FILL_BLOCK):
        for left in range(0, width, FILL_BLOCK):
            inner = (slice(top, top + FILL_BLOCK), slice(left, left + FILL_BLOCK))
            if not holes[inner].any():
                continue
            up, start = max(top - FILL_MARGIN, 0), max(left - FILL_MARGIN, 0)
            window = (slice(up, top + FILL_BLOCK + FILL_MARGIN), slice(start, left + FILL_BLOCK + FILL_MARGIN))
            filled = restoration.inpaint_biharmonic(image[window], holes[window], channel_axis=-1)
            out[inner] = filled[top - up : top - up + FILL_BLOCK, left - start : left - start + FILL_BLOCK]
    return out


def _opencv(flag_name: str) -> Callable:
    def method(image: np.ndarray, problem) -> np.ndarray:
        import cv2

        ints = np.round(image * 255).astype(np.uint8)
        holes = (problem.mask[:, :, 0] == 0).astype(np.uint8)
        out = cv2.inpaint(ints, holes, 3, getattr(cv2, flag_name))
        return (out.reshape(image.shape) / 255.0).astype(np.float32)

    return method


def wiener(image: np.ndarray, problem) -> np.ndarray:
    margin = _margin(image, problem.kernel)
    return _channels(lambda c: restoration.wiener(c, problem.kernel, balance=0.01, clip=False), image, margin)


def richardson_lucy(image: np.ndarray, problem) -> np.ndarray:
    margin = _margin(image, problem.kernel)
    return _channels(lambda c: restoration.richardson_lucy(c, problem.kernel, num_iter=30, clip=False), image, margin)


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


_NEEDS = {  # baselines that run only where an optional package is: (its module, the extra that installs it)
    "CBM3D": ("bm3d", "bm3d"),
    "OpenCV Telea": ("cv2", "opencv"),
    "OpenCV NS": ("cv2", "opencv"),
}


def _every(task: str) -> dict[str, Callable]:
    """Every baseline that fits `task`, installed or not, in the order results list them."""
    denoisers = {"CBM3D": cbm3d, "NLM": nlm, "TV": tv, "wavelet": wavelet}
    table = {
        "denoise": denoisers,
        "deblock": denoisers,
        "super-resolve": {"bicubic": bicubic, "Lanczos": lanczos},
        "inpaint": {
            "biharmonic": biharmonic,
            "OpenCV Telea": _opencv("INPAINT_TELEA"),
            "OpenCV NS": _opencv("INPAINT_NS"),
        },
        "deblur": {"Wiener": wiener, "Richardson-Lucy": richardson_lucy},
    }
    return table.get(task, {})


def _installed(name: str) -> bool:
    return name not in _NEEDS or _has(_NEEDS[name][0])


def for_task(task: str) -> dict[str, Callable]:
    """The baselines that fit `task` and can run here (optional packages only when installed)."""
    return {name: method for name, method in _every(task).items() if _installed(name)}


def missing(task: str) -> list[str]:
    """The baselines of `task` that cannot run here, each group with the extra that adds it.

    >>> missing("super-resolve")
    []
    """
    absent: dict[str, list[str]] = {}
    for name in _every(task):
        if not _installed(name):
            absent.setdefault(_NEEDS[name][1], []).append(name)
    return [f"{' and '.join(names)} (install the `{extra}` extra)" for extra, names in absent.items()]
