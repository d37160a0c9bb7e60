"""How the fitting step runs on its device: number precision, memory layout, compilation.

These change speed, never the method: a preset says *what* to fit, `Acceleration` says how
the arithmetic is done. Everything is scoped to one fit (context managers, a wrapped module),
so no global switch is left behind.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
from torch import nn

from .errors import DipError

PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's
GRAPH_MODES = ("reduce-overhead", "max-autotune")  # the compile modes that replay CUDA graphs
AUTO_PRECISION = {"cuda": "tf32", "cpu": "fp32"}  # --precision auto, per device type (see benchmarks/README.md)
NHWC_FROM = 64 * 64  # channels_last="auto": NHWC on a CPU from canvases of this many pixels (benchmarks/README.md)


def cpu_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (x86 AVX-512 BF16 or AMX tiles), the CPUs on
    which `precision="bf16"` runs (benchmarks/README.md, "Mixed precision on a CPU")."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


@dataclass(frozen=True)
class Acceleration:
    """fp32: exact float32 everywhere. tf32: float32 storage, convolutions and matrix products on
    TensorFloat-32 tensor cores (CUDA). bf16/fp16: autocast mixed precision (CUDA; bf16 also on a
    CPU with bfloat16 instructions, `cpu_bf16`); weights, Adam
    state, BatchNorm statistics and the loss stay float32; fp16 adds loss scaling.
    `channels_last`: NHWC memory layout (True), NCHW (False), or "auto": NHWC on a CPU for
    canvases of at least `NHWC_FROM` pixels, where it measured faster. `compile`: torch.compile
    the network (True, or one of `COMPILE_MODES`: "reduce-overhead" replays the forward and
    backward passes as CUDA graphs, torch's own alternative to `cuda_graph`). `cuda_graph`: every
    decision of a step taken on the device and the whole step replayed as a CUDA graph
    (`dip.graphed`). CPU runs are always reproducible; `deterministic` makes CUDA runs so too."""

    precision: str = "fp32"
    channels_last: bool | str = False
    compile: bool | str = False
    deterministic: bool = False  # reproducible cuDNN kernels, no autotuning (CUDA)
    cuda_graph: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise DipError(f"unknown precision {self.precision!r}; choose from {', '.join(PRECISIONS)}")
        if self.channels_last not in (True, False, "auto"):
            raise DipError(f"channels_last must be True, False or 'auto', got {self.channels_last!r}")
        if isinstance(self.compile, str) and self.compile not in COMPILE_MODES:
            raise DipError(f"unknown compile mode {self.compile!r}; choose from {', '.join(COMPILE_MODES)}")

    def check(self, device: torch.device) -> None:
        """Refuse what the device cannot do: tf32 and fp16 are for CUDA; bf16 also runs on a CPU
        that computes bfloat16 itself (`cpu_bf16`), where it measured faster than fp32 (on a CPU
        without, bf16 autocast measured ~80x slower)."""
        bf16_on_cpu = self.precision == "bf16" and device.type == "cpu"
        if bf16_on_cpu and not cpu_bf16():
            raise DipError(
                "precision bf16 on a CPU needs one with bfloat16 instructions (AVX-512 BF16 or AMX), "
                "which this one lacks; use fp32"
            )
        if self.precision != "fp32" and device.type != "cuda" and not bf16_on_cpu:
            raise DipError(f"precision {self.precision} needs a CUDA device; on {device.type} use fp32")
        if self.cuda_graph and device.type != "cuda":
            raise DipError(f"the CUDA graph needs a CUDA device, not {device.type}")
        if self.cuda_graph and self.precision == "fp16":
            raise DipError("the CUDA graph cannot scale fp16 losses: use bf16")
        if self.cuda_graph and self.compile in GRAPH_MODES:
            raise DipError(f"compile mode {self.compile} makes its own CUDA graphs: leave out the CUDA graph")

    @classmethod
    def default(cls, device: torch.device) -> Acceleration:
        """What runs unless asked otherwise: `AUTO_PRECISION` for the device type."""
        return cls(AUTO_PRECISION.get(device.type, "fp32"))

    @classmethod
    def resolve(
        cls,
        device: torch.device,
        precision: str = "auto",
        channels_last: bool | str = "auto",
        compile: bool | str = False,
        deterministic: bool = False,
        cuda_graph: bool | str = "auto",
        checkpointed: bool = False,
    ) -> Acceleration:
        """The options of a run, 'auto' precision and CUDA graph resolved for `device`, checked
        against it. The graph is on by default on CUDA, where it measured 1.5-3.4x faster a step
        (benchmarks/README.md), unless fp16, a compile mode or a `checkpointed` run (which needs
        the plain loop) rules it out.

        >>> Acceleration.resolve(torch.device("cpu")).describe()
        'fp32+channels_last=auto'
        >>> gpu = torch.device("cuda")
        >>> Acceleration.resolve(gpu).describe(), Acceleration.resolve(gpu, "fp16").describe()
        ('tf32+graph', 'fp16')
        >>> Acceleration.resolve(gpu, checkpointed=True).describe()
        'tf32'
        """
        if precision == "auto":
            precision = cls.default(device).precision
        if cuda_graph == "auto":
            cuda_graph = device.type == "cuda" and precision != "fp16" and not compile and not checkpointed
        if channels_last == "auto" and device.type != "cpu":
            channels_last = False  # measured no faster on CUDA (benchmarks/README.md)
        acceleration = cls(precision, channels_last, compile, deterministic, cuda_graph)
        acceleration.check(device)
        return acceleration

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    def prepare(self, net: nn.Module, z: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
        """The module to call and its input, in the chosen layout (the parameters stay shared
        with `net`, which keeps its plain state_dict); deterministic runs get layers whose CUDA
        gradients are reproducible."""
        if self.deterministic:
            from .nets.deterministic import make_deterministic

            make_deterministic(net)
        if self.nhwc(z):
            net = net.to(memory_format=torch.channels_last)
            z = z.contiguous(memory_format=torch.channels_last)
        if not self.compile:
            return net, z
        mode = None if self.compile is True else self.compile
        compiled = torch.compile(net, mode=mode)
        return (_StepGraphs(compiled) if mode in GRAPH_MODES else compiled), z

    def nhwc(self, z: torch.Tensor) -> bool:
        """Whether a fit of input `z` runs in NHWC: asked for, or ("auto") on a CPU with a canvas
        of at least `NHWC_FROM` pixels. There NHWC measured 0.69-1.06 of the NCHW step for the
        default nets (64-512 px, mostly 0.75-0.93), 0.66-1.06 for the paper's, and 0.74-0.91 for
        fused batches of four 64 or 96 px fits (benchmarks/README.md, "The memory layout on a CPU");
        smaller canvases were not measured."""
        if self.channels_last == "auto":
            return z.device.type == "cpu" and z.shape[-2] * z.shape[-1] >= NHWC_FROM
        return self.channels_last

    @contextlib.contextmanager
    def arithmetic(self, device: torch.device):
        """During the fit, on CUDA: TF32 on or off for convolutions and products (torch's default
        is on for convolutions only), cuDNN autotuning (the canvas size is fixed, so the fastest
        kernel is found once) unless deterministic kernels are asked for, and then torch's
        deterministic-algorithms switch. torch's switches are process-wide: each is restored on
        exit, so one fit's settings never leak into the next."""
        if device.type != "cuda":
            yield
            return
        settings = {
            (torch.backends.cudnn, "allow_tf32"): self.precision != "fp32",
            (torch.backends.cuda.matmul, "allow_tf32"): self.precision != "fp32",
            (torch.backends.cudnn, "benchmark"): not self.deterministic,
            (torch.backends.cudnn, "deterministic"): self.deterministic,
        }
        previous = {key: getattr(*key) for key in settings}
        deterministic_before = torch.are_deterministic_algorithms_enabled()
        for (backend, name), value in settings.items():
            setattr(backend, name, value)
        if self.deterministic:
            # cuBLAS needs a fixed workspace for reproducible products; read when its handle is made.
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            for (backend, name), value in previous.items():
                setattr(backend, name, value)
            torch.use_deterministic_algorithms(deterministic_before)

    def autocast(self, device: torch.device, cache: bool = True):
        """Mixed precision for the network's forward pass (and so its backward), or nothing;
        `cache=False` where the pass is captured as a CUDA graph (torch's rule)."""
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=dtype, cache_enabled=cache)

    def scaler(self, device: torch.device) -> torch.amp.GradScaler | None:
        """Loss scaling keeps fp16 gradients from underflowing; bf16 has float32's range."""
        return torch.amp.GradScaler(device.type) if self.precision == "fp16" else None

    def describe(self) -> str:
        """The variant's name in the form `parse` takes: 'bf16+channels_last+compile+graph'."""
        compile = f"compile={self.compile}" if isinstance(self.compile, str) else "compile"
        layout = "channels_last=auto" if self.channels_last == "auto" else "channels_last"
        flags = {layout: self.channels_last, compile: self.compile, "graph": self.cuda_graph}
        return "+".join([self.precision] + [name for name, on in flags.items() if on])

    def options(self) -> dict:
        """The `dip.run` keywords that give this arithmetic."""
        return {
            "precision": self.precision,
            "channels_last": self.channels_last,
            "compile": self.compile,
            "deterministic": self.deterministic,
            "cuda_graph": self.cuda_graph,
        }

    @classmethod
    def parse(cls, text: str) -> Acceleration:
        """'bf16+channels_last+compile+graph' -> Acceleration (the bench's variant names);
        'compile=MODE' names a torch.compile mode, 'channels_last=auto' the layout by canvas."""
        parts = text.split("+")
        flags = parts[1:]
        known = ("channels_last", "channels_last=auto", "compile", "graph")
        unknown = [p for p in flags if p not in known and not p.startswith("compile=")]
        if unknown:
            raise DipError(
                f"unknown acceleration option {unknown[0]!r} in {text!r} "
                "(PRECISION[+channels_last[=auto]][+compile[=MODE]][+graph])"
            )
        modes = [p.removeprefix("compile=") for p in flags if p.startswith("compile=")]
        compile = modes[0] if modes else "compile" in flags
        layout = "auto" if "channels_last=auto" in flags else "channels_last" in flags
        return cls(parts[0], layout, compile, cuda_graph="graph" in flags)


class _StepGraphs(nn.Module):
    """A network compiled to replay as CUDA graphs, called once per fitting step: each call starts
    a new step for torch's graph trees, and returns a copy, since the graph's output memory is
    overwritten by the next replay (the running average and the undo keep earlier outputs)."""

    def __init__(self, compiled: nn.Module):
        super().__init__()
        self.compiled = compiled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.compiler.cudagraph_mark_step_begin()
        return self.compiled(x).clone()
