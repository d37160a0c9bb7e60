"""Classical methods to compare with, numpy in and numpy out like the tasks."""
from __future__ import annotations

import numpy as np
from skimage.transform import resize

ORDERS = {"nearest": 0, "bilinear": 1, "bicubic": 3}


def upscale(image: np.ndarray, factor: int, method: str = "bicubic") -> np.ndarray:
    """Interpolate (H, W, C) up by `factor` (scikit-image spline of the method's order)."""
    if method == "lanczos":
        from PIL import Image

        ints = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
        pil = Image.fromarray(ints[:, :, 0] if ints.shape[2] == 1 else ints)
        big = np.asarray(pil.resize((image.shape[1] * factor, image.shape[0] * factor), Image.Resampling.LANCZOS))
        return (big.reshape(big.shape[0], big.shape[1], -1) / 255.0).astype(np.float32)
    shape = (image.shape[0] * factor, image.shape[1] * factor, image.shape[2])
    return resize(image, shape, order=ORDERS[method], mode="edge", anti_aliasing=False).clip(0, 1).astype(np.float32)


def no_op(image: np.ndarray) -> np.ndarray:
    """The input itself: the trivial baseline."""
    return image
