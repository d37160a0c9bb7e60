"""Probe: DIP's restoration as the pilot of a Wiener filter on the noisy image (denoising).

BM3D's second stage filters the noisy image in a local transform, keeping each coefficient in the
proportion pilot^2 / (pilot^2 + sigma^2) that a first estimate (the pilot) says is signal. Here the
pilot is DIP's own result: the default (seed 0), and the mean of K seeded fits (the `best`
preset's ensemble). The filters: `dct`, one pass of `dip.wiener.wiener(match=False)` (overlapping
8x8 DCT blocks in an orthonormal opponent colour space, each pixel the weighted mean of its
blocks' estimates, no block matching) on the noisy image as it is; `dct x2 clipped`, the same with
the clipping bias the pilot predicts removed first, in two passes (the presets' step up to sigma
40 before block matching); the same in 16x16 blocks (`16 px`, as they ran it above sigma 40), or on
the channels' mean only, the fit's colour differences kept (`grey`); `matched`, the same with block
matching (`wiener(match=True)`, the presets' step: each block filtered in a group with its
closest blocks in the pilot, in 8x8 or 16x16 blocks, two passes or one, a reference block every
third pixel, every second or at every block; all these with
the pilot as given, and `blended`, the presets' step, with a share of the noisy image blended into
the pilot, `dip.wiener.blend_for`); `bm3d`,
BM3D's own collaborative Wiener stage with the pilot given (the optional `bm3d` package). Also
printed: rho, the share of the noise the result kept (`dip.metrics.noise_kept`; a restoration made
from this noisy image keeps some of its noise: rho > 0).

CBSD68 (the settings-choice set), centre crops, Gaussian noise sigma 25 (seed 0; `--sigma`). The fits are
kept in `.probe-cache/` (git-ignored), so a second run with other filters rescores without fitting.

    python benchmarks/pilot_probe.py [--images 4|FIRST:LAST] [--crop 128] [--fits 4] [--sigma 25] [--filter NAME ...]

Appends one row per image to benchmarks/results/pilot-probe-DEVICE-DATE.md as it finishes.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

import dip
from dip.baselines import cbm3d
from dip.bench import data_root
from dip.bench.choice import Case, cases, image_span
from dip.bench.results import append_mean, append_row, results_file
from dip.metrics import noise_kept, psnr
from dip.wiener import wiener

CACHE = Path(__file__).parents[1] / ".probe-cache"


def bm3d_wiener(noisy: np.ndarray, pilot: np.ndarray, sigma: float) -> np.ndarray:
    """BM3D's Wiener stage on `noisy` with `pilot` as its first estimate, in bm3d's opponent space
    (blocks matched in each channel on its own)."""
    import bm3d

    opp, top, bottom, scale, forward = bm3d.rgb_to(noisy, "opp")
    guide = (pilot.reshape(-1, 3) @ forward.T - bottom) / (top - bottom)
    guide, stds = guide.reshape(pilot.shape), sigma * np.sqrt(scale)
    # one channel a call: bm4d's multichannel path passes a pilot to every channel whole
    filtered = np.stack([bm3d.bm3d(opp[..., c], stds[c], stage_arg=guide[..., c]) for c in range(3)], axis=2)
    return bm3d.rgb_to(filtered, "opp", True, top, bottom)[0]


def as_given(**options) -> Callable[[np.ndarray, np.ndarray, float], np.ndarray]:
    """The Wiener step with `options` and the pilot as given (no share of the noisy image blended in)."""
    return lambda noisy, pilot, sigma: wiener(noisy, pilot, sigma, blend=0.0, **options)


def noise_tag(sigma: float) -> str:
    """The file-name mark of a noise level other than the usual sigma 25."""
    return "" if sigma == 25 else f"-sigma{sigma:g}"


def fitted(
    name: str, problem, observed: np.ndarray, crop: int, fits: int, device: str
) -> tuple[np.ndarray, int, float]:
    """The `fits` seeded default fits of one case (cached), stacked, each as the network gave it (before
    any refining step of the preset); their steps and seconds in all."""
    path = CACHE / f"fits-{name}-{crop}-{fits}{noise_tag(problem.sigma)}.npz"
    if path.exists():
        saved = np.load(path)
        return saved["outputs"], int(saved["steps"]), float(saved["seconds"])
    started = time.perf_counter()
    done = dip.run_many([problem] * fits, [observed] * fits, seed=range(fits), device=device)
    # the fits' own results: where the preset refines, `pixels` has the Wiener step in it already
    outputs = np.stack([d.pixels if d.unrefined is None else d.unrefined for d in done])
    steps = sum(d.fit.step for d in done)
    seconds = time.perf_counter() - started
    CACHE.mkdir(exist_ok=True)
    np.savez(path, outputs=outputs, steps=steps, seconds=seconds)
    return outputs, steps, seconds


def probe_parser(doc: str, images: str = "4") -> argparse.ArgumentParser:
    """The options every denoising probe on the settings-choice set takes: which images, the crop,
    the noise and the device."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--images", default=images, help="N (the first N of CBSD68, sorted by name) or FIRST:LAST")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--sigma", type=float, default=25)
    parser.add_argument("--device", default="cpu")
    return parser


def probe_setting(args: argparse.Namespace) -> str:
    """The results file's line that says which crops a probe ran on (`probe_parser`'s options)."""
    start, stop = image_span(args.images)
    return (
        f"CBSD68 (the settings-choice set), images {start + 1}-{stop} sorted by name, centre {args.crop} px "
        f"crops, Gaussian noise sigma {args.sigma:g} (seed 0)"
    )


def probe_cases(args: argparse.Namespace) -> Iterator[Case]:
    """The denoising cases `probe_parser`'s options name: (name, problem, noisy crop, clean crop)."""
    start, stop = image_span(args.images)
    return cases("denoise", stop - start, args.crop, data_root(), start=start, sigma=args.sigma)


def main() -> None:
    parser = probe_parser(__doc__)
    parser.add_argument("--fits", type=int, default=4, help="seeded fits averaged (1: the default alone)")
    parser.add_argument("--filter", action="append", help="a filter to run, by name (repeat; default: all)")
    args = parser.parse_args()
    filters = {
        "dct": as_given(clipped=False, passes=1, block=8, match=False),
        "dct x2 clipped": as_given(block=8, match=False),
        "dct x2 clipped, 16 px": as_given(block=16, match=False),
        "dct x2 clipped, grey": as_given(block=8, colour=False, match=False),
        "matched": as_given(block=8, step=3),
        "matched, 1 pass": as_given(block=8, passes=1, step=3),
        "matched, 16 px": as_given(block=16, step=3),
        "matched, every block": as_given(block=8, step=1),
        "matched, every 2nd": as_given(block=8, step=2),
        "matched, every 2nd, Kaiser 2": as_given(step=2, beta=2.0),
        "matched, every 2nd, Kaiser 4": as_given(step=2, beta=4.0),
        "matched, every 2nd, blended": lambda noisy, pilot, sigma: wiener(noisy, pilot, sigma, step=2),
    }
    try:
        import bm3d  # noqa: F401

        filters["bm3d"] = bm3d_wiener
    except ImportError:
        pass
    if args.filter:
        unknown = set(args.filter) - set(filters)
        if unknown:
            parser.error(f"unknown filter(s) {sorted(unknown)}; known here: {list(filters)}")
        filters = {k: f for k, f in filters.items() if k in args.filter}
    pilots = {"default": "default (seed 0)"} | ({"mean": f"mean of {args.fits}"} if args.fits > 1 else {})
    methods = [(p, f) for p in pilots for f in (None, *filters)]
    path = results_file(
        Path(__file__).parent / "results",
        f"pilot-probe-{args.device}" + noise_tag(args.sigma),
        "Probe: DIP as the pilot of a Wiener filter",
        [
            probe_setting(args),
            f"RGB PSNR of the default preset (seed 0) and of the mean of {args.fits} seeded default fits, alone and "
            "as the pilot of a Wiener filter on the noisy crop (`dct`: 8x8 blocks, no matching, one pass; `dct x2 "
            "clipped`: the same, the clipping bias removed first, two passes; `16 px`: in 16x16 blocks; `grey`: "
            "only the channels' mean filtered, the fit's colour differences kept; `matched`: the same with block "
            "matching, 8x8 or 16x16 blocks, two passes or one, a reference block every third pixel, every "
            "second (`every 2nd`) or at every block, all with the pilot as given; `blended`: the presets' step, a "
            "share of the noisy image blended into the pilot (`dip.wiener.blend_for`); `bm3d`: BM3D's Wiener "
            "stage); each fit refined and then averaged, as `best` does; CBM3D alone; rho: the share of the noise "
            "kept; steps and seconds: the fits' (as first run, when they come from the cache)",
        ],
        [
            "image",
            *(pilots[p] + (f" + {f}" if f else "") for p, f in methods),
            *([f"mean of {args.fits}, each refined as the preset does (best)"] if args.fits > 1 else []),
            *(["CBM3D"] if "bm3d" in filters else []),
            *(f"rho {p}" for p in pilots),
            "steps",
            "seconds",
        ],
    )
    rows = []
    for name, problem, observed, clean in probe_cases(args):
        outputs, steps, seconds = fitted(name, problem, observed, args.crop, args.fits, args.device)
        sigma = problem.sigma / 255
        results = {"default": outputs[0], "mean": outputs.mean(axis=0)}
        scores = [
            psnr(np.clip(results[p] if f is None else filters[f](observed, results[p], sigma), 0, 1), clean)
            for p, f in methods
        ]
        if args.fits > 1:  # what `best` returns: each fit refined, then the mean
            scores.append(psnr(np.mean([problem.refined(one, observed) for one in outputs], axis=0), clean))
        if "bm3d" in filters:
            scores.append(psnr(cbm3d(observed, problem), clean))
        rhos = [noise_kept(observed - clean, results[p] - clean)[0] for p in pilots]
        rows.append(scores)
        cells = [name, *(f"{v:.2f}" for v in scores), *(f"{r:.3f}" for r in rhos), steps]
        append_row(path, [*cells, f"{seconds:.0f}"])
    append_mean(path, ["**average**"], rows, blanks=len(pilots) + 2)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
