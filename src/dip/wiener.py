"""A Wiener filter of the noisy image with the fit's result as its pilot: the last step of the
denoising presets that ask for it (`Preset.refine`, `Denoising.refined`).

A DIP fit stopped at the noise level keeps part of the noise it was fitted to (8-16% of it on
128 px crops: benchmarks/README.md, "DIP as the pilot of a Wiener filter"), and averaging seeded
fits does not remove that part, as every fit saw the same noise. BM3D's second stage shows what to
do with a good first estimate (the pilot): filter the noisy image again in a local transform,
keeping each coefficient in the proportion pilot^2 / (pilot^2 + sigma^2) that the pilot says is
signal. Here, as in BM3D's Wiener stage: an 8x8 reference block every second pixel (every
third, as in BM3D, above sigma 40) is grouped with the blocks closest to it in the pilot within
+-19 px, each group's 3-D transform (the blocks' 2-D DCT, then a DCT along the group) kept in the
pilot's proportions, and each pixel is the mean of its blocks' estimates weighted as BM3D
weights them (1 / (sigma^2 * sum of the squared gains)); in an orthonormal opponent colour space
(white noise stays white, of the same sigma), in bands of rows so that memory stays bounded on
any photo. `match=False` filters every overlapping block alone (16x16 above sigma 40): faster,
and weaker on smooth images. Noise clipped to [0, 1] is not zero-mean near black and white, so
the noisy image is first moved by the bias the pilot predicts there (`dip.operators.ClippedMean`).
Two passes: the first result is the second pass's pilot. A fit stopped at the noise level is
smoother than the clean image, and a step that trusts it filters away the texture it missed: the
first pass's pilot is the fit with a share of the noisy image blended back (`blend_for`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy import fft

from .operators import ClippedMean
from .tiling import tile_starts

BLOCK = 8
# Without block matching, above sigma 40 (as BM3D's profiles, which enlarge their blocks for strong
# noise) 16x16 blocks: +0.10 dB over 8x8 on ten 256 px settings-choice crops at sigma 50, where 8x8
# lost 0.46 dB to the fit alone on one of them and 16x16 lost on none (benchmarks/README.md, "DIP as
# the pilot of a Wiener filter"). With matching 8x8 at every sigma: the group holds the block's
# like, and 16x16 groups scored less there.
STRONG_BLOCK = 16
# sigma on 0..255 above which noise counts as strong: here for the block, in `dip.problems` for the
# presets picked (the paper's sigma-50 settings)
STRONG_SIGMA = 40
PASSES = 2
# the share of the noisy image in the first pass's pilot, per unit of sigma (`blend_for`)
BLEND_PER_SIGMA = 0.8
# Deblurring's step (`deconvolve`): power spectra averaged over 5x5 frequencies, the pilot's taken
# twice (a fit stopped early is smoother than the sharp image: benchmarks/README.md, "Deblurring")
DECONVOLVE_SMOOTH = 2
DECONVOLVE_GAIN = 2.0
# rows of blocks filtered at a time: bounds the (channels, 64, rows, width) coefficient tensors
_ELEMENTS = 2**24
# elements of one band's block spectra in `_matched_filter` (three such tensors at a time: 256 MB
# each), though a band is never narrower than the rows it needs beyond its references
_BAND_ELEMENTS = 2**26


def dct_rows(block: int = BLOCK) -> torch.Tensor:
    """The orthonormal 1-D DCT-II matrix (frequency, sample); a block's 2-D DCT is R @ X @ R.T.

    >>> rows = dct_rows(4)
    >>> bool(torch.allclose(rows @ rows.T, torch.eye(4, dtype=rows.dtype), atol=1e-12))
    True
    """
    n = torch.arange(block, dtype=torch.float64)
    rows = torch.cos(math.pi * (n[None, :] + 0.5) * n[:, None] / block) * math.sqrt(2 / block)
    rows[0] /= math.sqrt(2)
    return rows


def _blocks(planes: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """The 2-D DCT of every block of (C, 1, H, W) planes, (C, block^2, H - block + 1, W - block + 1):
    separably, down the columns and then along the rows."""
    block = rows.shape[0]
    down = F.conv2d(planes, rows[:, None, :, None])  # (C, block, h, W)
    channels, _, height, width = down.shape
    across = F.conv2d(down.reshape(channels * block, 1, height, width), rows[:, None, None, :])
    return across.reshape(channels, block * block, height, width - block + 1)


def _overlap_add(coefficients: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Every block's inverse DCT added into place: the adjoint of `_blocks`, (C, 1, H, W)."""
    block = rows.shape[0]
    channels, _, height, width = coefficients.shape
    across = F.conv_transpose2d(coefficients.reshape(channels * block, block, height, width), rows[:, None, None, :])
    return F.conv_transpose2d(across.reshape(channels, block, height, -1), rows[:, None, :, None])


def _opponent(channels: int) -> torch.Tensor:
    """An orthonormal colour transform with the mean of the channels first (identity for grey);
    float32 whatever torch's default type, as the planes it turns."""
    if channels != 3:
        return torch.eye(channels, dtype=torch.float32)
    rows = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, -1.0], [1.0, -2.0, 1.0]], dtype=torch.float32)
    return rows / rows.norm(dim=1, keepdim=True)


def _filter(noisy: torch.Tensor, pilot: torch.Tensor, sigma: float, rows: torch.Tensor) -> torch.Tensor:
    """One pass on (C, 1, H, W) planes: the weighted overlap-add of every block's Wiener estimate."""
    block = rows.shape[0]
    height, width = noisy.shape[-2:]
    out, weight = torch.zeros_like(noisy), torch.zeros_like(noisy)
    starts = height - block + 1
    step = max(1, _ELEMENTS // (noisy.shape[0] * block * block * width))
    ones = torch.ones(1, 1, block, block, dtype=noisy.dtype, device=noisy.device)
    for top in range(0, starts, step):
        span = slice(top, min(starts, top + step) + block - 1)
        guide = _blocks(pilot[..., span, :], rows) ** 2
        gain = guide / (guide + sigma**2)
        trust = 1.0 / (sigma**2 * (gain**2).sum(dim=1, keepdim=True) + 1e-12)
        out[..., span, :] += _overlap_add(trust * gain * _blocks(noisy[..., span, :], rows), rows)
        weight[..., span, :] += F.conv_transpose2d(trust, ones)
    return out / weight


# block matching (`wiener(match=True)`), BM3D's Wiener-stage settings but the step: a reference
# block every MATCH_STEP pixels (STRONG_MATCH_STEP above sigma 40, BM3D's: `step_for`), matched
# within +-MATCH_REACH pixels to at most MATCH_MOST blocks whose mean squared difference from it
# (on the pilot's channel mean, 0..1) is below MATCH_LIMIT (BM3D's 400 on 0..255, per pixel; 3500
# above sigma 40). Every second pixel rather than BM3D's third: +0.04 dB on ten 128 px
# settings-choice crops at sigma 25 (every pixel +0.06, at several times the work), on every
# crop; at sigma 50 it changed under 0.01 dB (benchmarks/README.md, "DIP as the pilot of a Wiener
# filter")
MATCH_STEP = 2
STRONG_MATCH_STEP = 3
MATCH_REACH = 19
MATCH_MOST = 32
MATCH_LIMIT = 400 / 255**2
STRONG_MATCH_LIMIT = 3500 / 255**2


def _window_sums(squares: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, block: int) -> torch.Tensor:
    """The sums of (K, H, W) planes over the block x block windows with top-left corners at rows `ys`
    and columns `xs`, (K, len(ys), len(xs)): separably, only where a reference block starts."""
    down = sum(squares[:, ys + i] for i in range(block))
    return sum(down[:, :, xs + j] for j in range(block))


def _matches(
    guide: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, block: int, limit: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Block matching on one (H, W) plane: for each reference block (top-left corners at rows `ys`
    and columns `xs`), the flat indices (R, MATCH_MOST) of its closest blocks within reach, itself
    first, in the grid of block positions ((H - block + 1) x (W - block + 1)), and their mean
    squared differences (inf beyond `limit` or out of reach)."""
    height, width = guide.shape
    refs = torch.cartesian_prod(ys, xs)
    span = 2 * MATCH_REACH + 1
    offsets = torch.cartesian_prod(*(torch.arange(-MATCH_REACH, MATCH_REACH + 1, device=guide.device),) * 2)
    best = torch.full((len(refs), MATCH_MOST), math.inf, device=guide.device)
    where = torch.zeros((len(refs), MATCH_MOST), dtype=torch.long, device=guide.device)
    chunk = max(1, _ELEMENTS // (height * width))
    # every shifted copy of the plane as a view, (span, span, H, W); outside the plane: far from all
    shifted = F.pad(guide[None, None], (MATCH_REACH,) * 4, value=1e3)[0, 0].unfold(0, height, 1).unfold(1, width, 1)
    for first in range(0, len(offsets), chunk):
        shifts = offsets[first : first + chunk]
        moved = shifted[shifts[:, 0] + MATCH_REACH, shifts[:, 1] + MATCH_REACH]
        sums = _window_sums((moved - guide) ** 2, ys, xs, block).reshape(len(shifts), -1).T / block**2
        y, x = refs[:, :1] + shifts[:, 0], refs[:, 1:] + shifts[:, 1]
        inside = (y >= 0) & (y <= height - block) & (x >= 0) & (x <= width - block)
        # out of reach: inf; ties (flat regions) go to the nearer offset, so the reference comes first
        sums = torch.where(inside, sums + 1e-9 * shifts.abs().sum(1) / span, math.inf)
        best, order = torch.cat([best, sums], 1).topk(MATCH_MOST, dim=1, largest=False)
        flat = y.clamp(0, height - block) * (width - block + 1) + x.clamp(0, width - block)
        where = torch.cat([where, flat], 1).gather(1, order)
    return where, torch.where(best <= limit, best, math.inf)


def _grouped(
    noisy: torch.Tensor,
    pilot: torch.Tensor,
    guide: torch.Tensor,
    ys: torch.Tensor,
    sigma: float,
    rows: torch.Tensor,
    limit: float,
    step: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Wiener estimates of the groups of the reference blocks at rows `ys` (every column) of
    (C, 1, H, W) planes, added up in the DCT domain at each block's place: (C, block^2, H', W')
    sums of the trust-weighted block spectra and (C, 1, H', W') sums of the trust, H' = H - block + 1.
    Each block's 2-D DCT is taken once for all (`_blocks`) and gathered into its groups."""
    block = rows.shape[0]
    channels, _, height, width = noisy.shape
    columns = torch.tensor(tile_starts(width, block, block - step), device=noisy.device)
    where, distance = _matches(guide, ys, columns, block, limit)
    found = (distance < math.inf).sum(1).clamp(min=1)
    sizes = 2 ** torch.floor(torch.log2(found.double())).long()
    # (C, positions, block^2): a block's spectrum contiguous, to gather whole
    spectra = [_blocks(planes, rows).flatten(2).transpose(1, 2).contiguous() for planes in (pilot, noisy)]
    total, trusted = torch.zeros_like(spectra[0]), spectra[0].new_zeros(channels, spectra[0].shape[1])
    for size in sizes.unique().tolist():
        chosen = (sizes == size).nonzero()[:, 0]
        along = dct_rows(size).to(noisy)  # the transform along a group
        chunk = max(1, _ELEMENTS // (channels * size * block * block))
        for first in range(0, len(chosen), chunk):
            places = where[chosen[first : first + chunk], :size].reshape(-1)
            shape = (channels, -1, size, block * block)
            signal, observed = (torch.einsum("gs,crsk->crgk", along, s[:, places].reshape(shape)) for s in spectra)
            gain = signal**2 / (signal**2 + sigma**2)
            trust = 1.0 / (sigma**2 * (gain**2).sum(dim=(2, 3)) + 1e-12)  # (C, r)
            estimates = torch.einsum("gs,crgk->crsk", along, gain * observed) * trust[..., None, None]
            total.index_add_(1, places, estimates.reshape(channels, -1, block * block))
            trusted.index_add_(1, places, trust[..., None].expand(-1, -1, size).reshape(channels, -1))
    grid = (height - block + 1, width - block + 1)
    return total.transpose(1, 2).reshape(channels, -1, *grid), trusted.reshape(channels, 1, *grid)


def _matched_filter(
    noisy: torch.Tensor,
    pilot: torch.Tensor,
    guide: torch.Tensor,
    sigma: float,
    rows: torch.Tensor,
    limit: float,
    step: int,
    beta: float = 0.0,
) -> torch.Tensor:
    """One pass on (C, 1, H, W) planes with block matching: each reference block grouped with its
    closest blocks in `guide` (H, W: the pilot's channel mean), each group's 3-D transform (2-D DCT,
    then the DCT along the group) kept in the pilot's Wiener proportions, the blocks added back into
    place weighted as `_filter` weights them and by a Kaiser window of `beta` over the block (0:
    flat; BM3D's Wiener stage, whose group sizes are powers of two). In bands of reference rows,
    each with the rows within reach of it, so that memory is bounded whatever the image's height
    (the result is the same)."""
    block = rows.shape[0]
    channels, _, height, width = noisy.shape
    starts = torch.tensor(tile_starts(height, block, block - step), device=noisy.device)
    reach = 2 * MATCH_REACH + block  # the rows a band needs beyond its references'
    band = max(reach, _BAND_ELEMENTS // (channels * block * block * width) - reach)
    out, weight = torch.zeros_like(noisy), torch.zeros_like(noisy)
    window = torch.from_numpy(np.kaiser(block, beta)).to(rows)
    placed = rows * window  # each block's inverse DCT, windowed as it is added into place
    ones = torch.outer(window, window)[None, None]
    first = 0
    while first < len(starts):
        last = first + int((starts[first:] < starts[first] + band).sum())
        top, bottom = max(0, int(starts[first]) - MATCH_REACH), min(height, int(starts[last - 1]) + MATCH_REACH + block)
        rows_in = slice(top, bottom)
        total, trusted = _grouped(
            noisy[..., rows_in, :],
            pilot[..., rows_in, :],
            guide[rows_in],
            starts[first:last] - top,
            sigma,
            rows,
            limit,
            step,
        )
        out[..., rows_in, :] += _overlap_add(total, placed)
        weight[..., rows_in, :] += F.conv_transpose2d(trusted, ones)
        first = last
    return out / weight


def block_for(sigma: float, match: bool = True) -> int:
    """The DCT blocks' side for noise of `sigma` on [0, 1]: 8 with block matching; without it 8,
    or 16 above sigma 40 on 0..255.

    >>> block_for(50 / 255), block_for(25 / 255, match=False), block_for(50 / 255, match=False)
    (8, 8, 16)
    """
    return STRONG_BLOCK if not match and sigma > STRONG_SIGMA / 255 else BLOCK


def step_for(sigma: float) -> int:
    """The spacing of the reference blocks for noise of `sigma` on [0, 1]: 2 up to sigma 40 on
    0..255, else 3 (BM3D's).

    >>> step_for(25 / 255), step_for(50 / 255)
    (2, 3)
    """
    return STRONG_MATCH_STEP if sigma > STRONG_SIGMA / 255 else MATCH_STEP


def blend_for(sigma: float) -> float:
    """The share of the noisy image blended into the first pass's pilot, `pilot + share * (noisy -
    pilot)`, for noise of `sigma` on [0, 1]: 0.8 sigma. On the settings-choice crops the best
    share grew with the noise, about 0.05 or less at sigma 10 on 0..255, 0.1 at 25, 0.15-0.2 at 50
    and 0.2 at 75 (+0.04, +0.23 and +0.29 dB over the pilot as given: benchmarks/README.md, "The
    noisy image blended into the pilot").

    >>> round(blend_for(25 / 255), 3), round(blend_for(50 / 255), 3)
    (0.078, 0.157)
    """
    return BLEND_PER_SIGMA * sigma


def wiener(
    noisy: np.ndarray,
    pilot: np.ndarray,
    sigma: float,
    clipped: bool = True,
    passes: int = PASSES,
    block: int | None = None,
    colour: bool = True,
    match: bool = True,
    step: int | None = None,
    beta: float = 0.0,
    blend: float | None = None,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """The noisy image (H, W, C) in [0, 1] Wiener-filtered with `pilot` (same shape) as the
    estimate of the clean one; `sigma` the Gaussian noise's standard deviation on [0, 1];
    `clipped`: the noise was clipped to [0, 1]; `block`: the DCT blocks' side (None: `block_for`
    sigma); `colour` False: only the channels' mean is filtered, the pilot's colour differences
    kept; `match`: each block filtered in a group with its closest blocks in the pilot (BM3D's
    Wiener stage, `_matched_filter`), or alone (False); `step`: with matching, a reference block
    every `step` pixels (None: `step_for` sigma; 1: every block, for several times the work);
    `beta`: with matching, each block's estimate weighted by a Kaiser window of this shape (BM3D's
    2.0) as the blocks are added up (0: flat, which scored higher here); `blend`: the share of the
    noisy image blended into the first pass's pilot (None: `blend_for` sigma; 0: the pilot as
    given); `device`: where the
    arithmetic runs (the fit's device: block matching on a photo takes minutes on a CPU). Images
    smaller than a block come back as the pilot.

    Examples
    --------
    >>> import numpy as np
    >>> from dip.degrade import add_noise
    >>> from dip.metrics import psnr
    >>> ramp = np.repeat(np.linspace(0.2, 0.8, 64)[None, :, None], 64, axis=0).repeat(3, axis=2)
    >>> noisy = add_noise(ramp, 25, seed=0)
    >>> round(psnr(wiener(noisy, ramp, 25 / 255), ramp) - psnr(noisy, ramp)) > 10  # a perfect pilot
    True
    """
    height, width, channels = noisy.shape
    if block is None:
        block = block_for(sigma, match)
    if step is None:
        step = step_for(sigma)
    if min(height, width) < block:
        return pilot
    device = torch.device(device)
    rows = dct_rows(block).float().to(device)
    opponent = _opponent(channels).to(device)
    filtered_planes = slice(None) if colour else slice(0, 1)

    def planes(image: torch.Tensor) -> torch.Tensor:  # (H, W, C) -> opponent (C, 1, H, W)
        return torch.einsum("hwc,dc->dhw", image, opponent)[:, None]

    observed = torch.from_numpy(np.asarray(noisy, np.float32)).to(device)
    share = blend_for(sigma) if blend is None else blend
    estimate = torch.from_numpy(np.asarray(pilot, np.float32)).to(device)
    estimate = (estimate + share * (observed - estimate)).clamp(0, 1)
    limit = STRONG_MATCH_LIMIT if sigma > STRONG_SIGMA / 255 else MATCH_LIMIT
    with torch.no_grad():
        for _ in range(passes):
            unbiased = observed - (ClippedMean(sigma)(estimate) - estimate) if clipped else observed
            filtered = planes(estimate)
            noisy_planes, pilot_planes = planes(unbiased)[filtered_planes], filtered[filtered_planes]
            filtered[filtered_planes] = (
                _matched_filter(noisy_planes, pilot_planes, estimate.mean(-1), sigma, rows, limit, step, beta)
                if match
                else _filter(noisy_planes, pilot_planes, sigma, rows)
            )
            estimate = torch.einsum("dhw,dc->hwc", filtered[:, 0], opponent).clamp(0, 1)
    return estimate.cpu().numpy()


def transfer(kernel: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The (H, W) discrete Fourier transform of convolving with `kernel` on an H x W image, its
    element (kh // 2, kw // 2) at the origin, as `dip.operators.Blur` (and SciPy) centre it.

    >>> bool(np.allclose(abs(transfer(np.ones((1, 1)), (4, 4))), 1))
    True
    """
    kh, kw = kernel.shape
    placed = np.zeros(shape, np.float32)
    placed[:kh, :kw] = kernel / kernel.sum()
    return fft.fft2(np.roll(placed, (-(kh // 2), -(kw // 2)), axis=(0, 1)))


def deconvolve(
    blurred: np.ndarray,
    pilot: np.ndarray,
    kernel: np.ndarray,
    sigma: float,
    smooth: int = DECONVOLVE_SMOOTH,
    gain: float = DECONVOLVE_GAIN,
    residual_bound: bool = True,
) -> np.ndarray:
    """`pilot` (H, W, C) corrected by the Wiener estimate of its error from what it leaves of the
    blurred image (H, W, C), `sigma` the noise's standard deviation on [0, 1]: with r = y - k * p
    the residual, p + F⁻¹[conj(K) E R / (|K|² E + sigma²)], where E, the error's power spectrum,
    is `gain` times the pilot's, bounded (`residual_bound`) by what the residual shows beyond the
    noise, (|R|² - sigma²)⁺ / |K|²; both power spectra averaged over (2 `smooth` + 1)²
    neighbouring frequencies. The bound keeps a good pilot: where the residual is noise, there is
    nothing to correct. The residual is taken through the replicate-bordered blur the fit saw, so
    the periodic Fourier transform meets only what the pilot missed and the noise.

    Examples
    --------
    >>> from dip.degrade import add_noise, blur
    >>> from dip.metrics import psnr
    >>> from dip.operators import gaussian_kernel
    >>> rng = np.random.default_rng(0)
    >>> sharp = np.kron(rng.random((8, 8, 1)), np.ones((8, 8, 3))).astype(np.float32)  # 64 px squares
    >>> kernel = gaussian_kernel(1.5)
    >>> blurred = add_noise(blur(sharp, kernel), 2, seed=0)
    >>> psnr(deconvolve(blurred, blurred, kernel, 2 / 255), sharp) > psnr(blurred, sharp) + 3
    True
    """
    from scipy.ndimage import uniform_filter

    from .degrade import blur

    def averaged(power: np.ndarray) -> np.ndarray:
        return uniform_filter(power, size=(2 * smooth + 1, 2 * smooth + 1, 1), mode="wrap") if smooth else power

    response = transfer(kernel, blurred.shape[:2])[:, :, None]
    passed = np.abs(response) ** 2
    residual = fft.fft2(np.asarray(blurred, np.float32) - blur(pilot, kernel), axes=(0, 1), norm="ortho")
    error = gain * averaged(np.abs(fft.fft2(np.asarray(pilot, np.float32), axes=(0, 1), norm="ortho")) ** 2)
    if residual_bound:
        shown = np.maximum(averaged(np.abs(residual) ** 2) - sigma**2, 0)
        error = np.minimum(error, shown / np.maximum(passed, np.finfo(np.float32).tiny))
    correction = np.conj(response) * error * residual / (passed * error + sigma**2)
    return (pilot + fft.ifft2(correction, axes=(0, 1), norm="ortho").real).astype(np.float32)
