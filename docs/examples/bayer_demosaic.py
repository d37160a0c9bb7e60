"""Demosaicking a Bayer mosaic with the Deep Image Prior: a degradation `dip` does not ship,
written as a `dip.Problem` in a few lines, run end to end and compared with the classical
method (bilinear interpolation of each colour plane) through the same `dip.run` call.

A camera sensor records one colour per pixel, in the RGGB pattern: red on even rows and even
columns, blue on odd rows and odd columns, green elsewhere. The observation is that one-channel
mosaic; the operator A takes a colour image to its mosaic; the network draws the colour image.

Run it: python docs/examples/bayer_demosaic.py
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import convolve

import dip
from dip.metrics import psnr


def bayer_masks(height: int, width: int) -> np.ndarray:
    """(H, W, 3) with 1 where the RGGB sensor records that colour."""
    rows, cols = np.mgrid[:height, :width]
    red = (rows % 2 == 0) & (cols % 2 == 0)
    blue = (rows % 2 == 1) & (cols % 2 == 1)
    return np.stack([red, ~(red | blue), blue], axis=2).astype(np.float32)


def mosaic(image: np.ndarray) -> np.ndarray:
    """What the sensor records: (H, W, 3) colour -> (H, W, 1) mosaic."""
    return (image * bayer_masks(*image.shape[:2])).sum(axis=2, keepdims=True)


def bilinear(observation: np.ndarray, problem: dip.Problem) -> np.ndarray:
    """Classical demosaicking: each colour plane filled by normalised bilinear interpolation."""
    masks = bayer_masks(*observation.shape[:2])
    kernel = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 4
    planes = [
        convolve(observation[:, :, 0] * masks[:, :, c], kernel, mode="mirror")
        / convolve(masks[:, :, c], kernel, mode="mirror")
        for c in range(3)
    ]
    return np.stack(planes, axis=2)


def bayer_problem(height: int, width: int) -> dip.Problem:
    """The mosaic as a degradation: A(x) keeps, at each pixel, the colour the sensor saw."""
    masks = torch.from_numpy(bayer_masks(height, width)).permute(2, 0, 1)[None]

    def sample(x: torch.Tensor) -> torch.Tensor:
        return (x * masks.to(x.device)).sum(dim=1, keepdim=True)

    return dip.Problem(sample, out_channels=3, baselines={"bilinear": bilinear}, name="Bayer demosaicking")


def main(size: int = 96, steps: int | None = None, device: str = "auto") -> dict[str, float]:
    """Mosaic a crop of scikit-image's astronaut, demosaic it both ways; PSNR of each."""
    from skimage import data

    clean = (data.astronaut()[30 : 30 + size, 160 : 160 + size] / 255).astype(np.float32)
    observed = mosaic(clean)
    problem = bayer_problem(size, size)
    scores = {}
    for method in ["bilinear", "dip"]:
        done = dip.run(problem, observed, method=method, steps=steps, device=device)
        scores[method] = psnr(done.image, clean)
        print(f"{method:8s} {scores[method]:.2f} dB  ({done.summary()})")
    return scores


if __name__ == "__main__":
    main()
