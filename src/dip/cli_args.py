"""Argument types shared by the command-line modules: parsers that raise `ValueError` or
`DipError` turned into argparse types (argparse then names the option in its one-line error)."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable

from .errors import DipError
from .problems import number


def command_line() -> str:
    """This run's command as a shell would take it again (quoted), for reports and results files."""
    return shlex.join(["dip", *sys.argv[1:]])


def arg(parse: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse type from a parser that raises ValueError or DipError."""

    def convert(text: str):
        try:
            return parse(text)
        except (ValueError, DipError) as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


def whole(low: int) -> Callable[[str], object]:
    """A whole number of at least `low`."""
    return arg(number(int, low))


def batch_size(text: str) -> int | str:
    """'auto' or a whole number of at least 1."""
    return text if text == "auto" else whole(1)(text)


def add_precision(parser) -> None:
    """`--precision`, as every command that fits takes it (a parser or an argument group)."""
    from .accel import AUTO_PRECISION, PRECISIONS

    parser.add_argument(
        "--precision",
        default="auto",
        choices=("auto", *PRECISIONS),
        help="arithmetic: fp32, tf32, bf16 or fp16 (mixed precision); tf32 and fp16 need CUDA, bf16 "
        "CUDA or a CPU with bfloat16 instructions (AVX-512 BF16, AMX) "
        f"(default auto: {AUTO_PRECISION['cuda']} on CUDA, fp32 elsewhere)",
    )
