"""The `dip` command: arguments in, Problems and `dip.run` options out, nothing more.

One subcommand per registered Problem (`dip.problems.REGISTRY`), generated from its fields;
the tools (demo, presets, compare, bench, weights, degrade) are thin too. Messages go through
`logging` (-q: warnings and errors only, -v: debug); data (tables) goes to stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .cli_args import add_precision, arg, batch_size, command_line, whole
from .errors import DipError
from .problems import REGISTRY

log = logging.getLogger("dip")
EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
FORMATS = " (PNG, JPEG, TIFF, BMP, WebP; grey, RGB or RGBA; 8 or 16 bit)"


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump) and exits 2."""

    def error(self, message: str):  # noqa: D102 (argparse's hook)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only, no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug messages too")


def _add_problem_command(commands, cls) -> None:
    """A subcommand for a registered Problem: its image inputs, its fields as options, and
    every option of `dip.run`."""
    from .presets import presets_for

    sub = commands.add_parser(cls.command, help=cls.help, description=cls.help)
    own = [(item, item.metadata["cli"]) for item in dataclasses.fields(cls) if "cli" in item.metadata]
    for item, option in own:
        if option.positional:
            sub.add_argument(item.name, help=option.help + FORMATS)
    if cls.observed:
        sub.add_argument("input", help=cls.observed + FORMATS + "; or a folder or quoted glob of them")
    for item, option in own:
        if option.positional:
            continue
        if isinstance(item.default, bool):  # a switch: its flag sets the other value
            action = "store_false" if item.default else "store_true"
            sub.add_argument(*option.flags, dest=item.name, action=action, help=option.help)
        else:
            sub.add_argument(
                *option.flags,
                dest=item.name,
                required=option.required,
                help=option.help,
                type=arg(option.parse) if option.parse else str,
                choices=option.choices,
                default=None if option.required else item.default,
            )
    names = [p.name for p in presets_for(cls.task)]
    sub.add_argument(
        "-o",
        "--output",
        required=True,
        help="the result (format from the extension); with a folder or glob as INPUT, a folder",
    )
    sub.add_argument(
        "--preset",
        default="default",
        help=f"settings (`dip presets`): {', '.join(names)} "
        "(default: default, the fast preset that stops itself, where the task has one)",
    )
    sub.add_argument("--steps", type=whole(1), help="number of Adam steps (default: the preset's)")
    stop = sub.add_mutually_exclusive_group()
    stop.add_argument(
        "--early-stop",
        dest="early_stop",
        action="store_true",
        default=None,
        help="stop automatically, keeping the best iterate (on by default except for paper presets)",
    )
    stop.add_argument("--no-early-stop", dest="early_stop", action="store_false", help="run every step of the budget")
    sub.add_argument("--seed", type=whole(0), default=0, help="random seed (default 0)")
    sub.add_argument(
        "--restarts",
        type=whole(1),
        default=None,
        metavar="K",
        help="fit K differently seeded networks and average their results (an ensemble: K times the work; "
        "default: the preset's, 1, or 4 for --preset best)",
    )
    sub.add_argument(
        "--batch",
        "--tile-batch",
        type=batch_size,
        default="auto",
        metavar="auto|N",
        help="fit up to N same-size problems (tiles, restarts) at once, each with its own network, the "
        "next taking the place of one that stops; auto sizes batches by the device (default)",
    )
    sub.add_argument(
        "--fits",
        metavar="DIR",
        help="keep each fit in DIR and read it back instead of fitting again when the same fit is asked "
        "for (e.g. --preset best after default reuses its seed-0 fit); a long fit stopped midway "
        "continues from its last state saved there",
    )
    sub.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda (default auto)")
    sub.add_argument("--reference", help="clean image: PSNR/SSIM against it while fitting and at the end")
    sub.add_argument(
        "--save-every",
        type=whole(1),
        metavar="N",
        help="also save the estimate every N steps, into OUTPUT's folder in STEM_steps/",
    )
    sub.add_argument(
        "--report",
        metavar="DIR",
        help="write an HTML report (restoration process, curves, comparison with classical methods, settings) into DIR",
    )
    sub.add_argument(
        "--animation",
        metavar="FILE",
        help="save the restoration process as an animated FILE.webp or FILE.gif, steps labelled (one image only)",
    )
    sub.add_argument("--force", action="store_true", help="overwrite an existing output or report")
    _add_common(sub)
    speed = sub.add_argument_group("speed (results stay float32 images)")
    add_precision(speed)
    speed.add_argument(
        "--channels-last",
        nargs="?",
        const="on",
        default="auto",
        choices=("auto", "on", "off"),
        help="NHWC memory layout: on, off, or auto (the default: on a CPU for images from 64x64, where it "
        "measured faster)",
    )
    speed.add_argument("--compile", action="store_true", help="torch.compile the network (compiling takes minutes)")
    speed.add_argument(
        "--deterministic",
        action="store_true",
        help="on CUDA: deterministic kernels, no cuDNN autotuning (slower; CPU runs are always reproducible)",
    )
    speed.add_argument(
        "--cuda-graph",
        action=argparse.BooleanOptionalAction,
        default="auto",
        help="on CUDA: decide each step on the GPU and replay it as a CUDA graph (default: on CUDA, "
        "unless --checkpoint, fp16 or --compile needs the plain loop)",
    )
    long_runs = sub.add_argument_group("long runs and big images")
    long_runs.add_argument(
        "--checkpoint",
        metavar="DIR",
        help="save the whole fitting state into DIR/STEM.ckpt "
        "every --checkpoint-every steps and on Ctrl-C/SIGTERM, to continue with --resume",
    )
    long_runs.add_argument(
        "--checkpoint-every", type=whole(1), default=100, metavar="N", help="steps between checkpoints (default 100)"
    )
    long_runs.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint DIR")
    if cls.tileable:
        long_runs.add_argument(
            "--tile",
            type=whole(32),
            metavar="SIZE",
            help="restore tiles of SIZE x SIZE input "
            "pixels one by one and blend them (memory then depends on SIZE only)",
        )
        long_runs.add_argument(
            "--overlap",
            type=whole(0),
            default=32,
            metavar="PX",
            help="pixels shared by neighbouring tiles, blended smoothly (default 32)",
        )
        long_runs.add_argument(
            "--cold-tiles",
            dest="warm_tiles",
            action="store_false",
            help="draw every tile's network afresh (default, in denoising: tiles start from the weights of the "
            "centre tile's fit, and stop sooner)",
        )
    if cls.observed and not any(option.positional for _, option in own):
        batch = sub.add_argument_group("many images (INPUT a folder or a quoted glob, -o a folder)")
        batch.add_argument(
            "--workers",
            type=whole(1),
            metavar="N",
            help="processes on a CPU, cores divided between them: a folder's images, or one image's tiles and "
            "restarts, N at once (default 1)",
        )
        batch.add_argument(
            "--scheduler",
            metavar="ADDRESS",
            help="send each image to a Dask cluster, e.g. tcp://host:8786 (needs the dask extra)",
        )
    sub.set_defaults(handler=cmd_restore, problem=cls)


def _recipe(args: argparse.Namespace) -> tuple:
    """(Recipe, the problem's image fields as {field: path}) from a problem command's arguments."""
    from .files import Recipe

    cls = args.problem
    own = [(item.name, item.metadata["cli"]) for item in dataclasses.fields(cls) if "cli" in item.metadata]
    settings = {name: getattr(args, name) for name, option in own if not option.image}
    images = {name: Path(getattr(args, name)) for name, option in own if option.image}
    options = dict(
        preset=args.preset,
        steps=args.steps,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        channels_last={"on": True, "off": False}.get(args.channels_last, "auto"),
        compile=args.compile,
        deterministic=args.deterministic,
        cuda_graph=args.cuda_graph,
        early_stop=args.early_stop,
        restarts=args.restarts,
        batch=args.batch,
        workers=getattr(args, "workers", None) or 1,
        fits=args.fits,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
    )
    options.update({name: getattr(args, name) for name in ("tile", "overlap") if getattr(args, name, None)})
    if getattr(args, "tile", None) and not args.warm_tiles:
        options["warm_tiles"] = False
    return Recipe(
        cls.command, settings, options, Path(args.reference) if args.reference else None, args.save_every, args.force
    ), images


def cmd_restore(args: argparse.Namespace) -> int:
    """A problem command: one image, or a batch when INPUT is a folder or a glob."""
    from .batch import is_batch
    from .files import Job, restore_file

    recipe, images = _recipe(args)
    if args.resume and not args.checkpoint:
        raise DipError("--resume needs --checkpoint DIR (where the interrupted run saved its state)")
    source = Path(args.input) if args.problem.observed else None
    if source is not None and is_batch(args.input) and hasattr(args, "workers"):
        if args.animation:
            raise DipError("--animation saves one image's process: give one image as INPUT")
        return _batch(args, recipe, images)
    if getattr(args, "scheduler", None):
        raise DipError("--scheduler needs a folder or a glob pattern as INPUT")
    job = Job(
        source,
        Path(args.output),
        images,
        Path(args.report) if args.report else None,
        Path(args.checkpoint) if args.checkpoint else None,
        Path(args.animation) if args.animation else None,
    )
    _, lines = restore_file(recipe, job, progress=not args.quiet, command=command_line())
    for line in lines:
        log.info("%s", line)
    return 0


def _batch(args: argparse.Namespace, recipe, images: dict[str, Path]) -> int:
    from .batch import plan, run_batch

    out = Path(args.output)
    jobs, settled = plan(
        args.input,
        out,
        images,
        args.force,
        Path(args.report) if args.report else None,
        Path(args.checkpoint) if args.checkpoint else None,
    )
    out.mkdir(parents=True, exist_ok=True)
    summary = run_batch(recipe, jobs, settled, args.workers or 1, args.scheduler, progress=not args.quiet)
    failed = [o for o in summary.outcomes if o.status == "failed"]
    log.log(logging.WARNING if failed else logging.INFO, "%s", summary.describe())
    for outcome in failed:
        log.warning("  failed: %s: %s", outcome.job.source, outcome.message)
    if summary.count("interrupted"):
        log.warning("batch: interrupted; run the same command with --resume to continue")
        return EXIT_INTERRUPTED
    return EXIT_FAILURE if failed else 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .cli_tools import add_tool_commands

    parser = Parser(
        prog="dip",
        description="Restore images with the Deep Image Prior: an untrained ConvNet "
        "fitted to the corrupted image, stopped before it fits the corruption.",
    )
    parser.add_argument("--version", action="version", version=f"dip {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    for cls in REGISTRY.values():
        _add_problem_command(commands, cls)
    add_tool_commands(commands, _add_common)
    return parser


def _configure_logging(args: argparse.Namespace) -> logging.Handler:
    """Messages to stderr, as plain lines; the level from -q / -v."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(
        logging.WARNING
        if getattr(args, "quiet", False)
        else logging.DEBUG
        if getattr(args, "verbose", False)
        else logging.INFO
    )
    log.propagate = False
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    from .run import Interrupted

    args = build_parser().parse_args(argv)
    handler = _configure_logging(args)
    try:
        return args.handler(args)
    except Interrupted as stop:
        log.error(
            "dip: interrupted at step %d; state saved in %s; run the same command with --resume to "
            "continue (no output written)",
            stop.step,
            stop.path,
        )
        return EXIT_INTERRUPTED
    except DipError as error:
        log.error("dip: error: %s", error)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        fits = getattr(args, "fits", None)
        kept = f"; the fits made so far, and the state of a fit under way where one is kept, are in {fits}: "
        kept += "the same command goes on from there"
        log.error("dip: interrupted; no output written%s", kept if fits else "")
        return EXIT_INTERRUPTED
    except MemoryError:
        log.error("dip: error: out of memory; try a smaller image, --tile, or another --device")
        return EXIT_FAILURE
    except Exception as error:  # a bug of ours: still one line, the traceback on request
        if os.environ.get("DIP_DEBUG"):
            raise
        text = (str(error).strip().splitlines() or [""])[0]
        log.error("dip: error: unexpected %s: %s (set DIP_DEBUG=1 for the traceback)", error.__class__.__name__, text)
        return EXIT_FAILURE
    finally:
        log.removeHandler(handler)
