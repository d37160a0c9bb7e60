"""Precision, memory layout and compilation: they change speed, not results.

The CUDA tests run only where a GPU is present (the device machine); on a CPU they skip.
"""

import subprocess
import sys

import numpy as np
import pytest
import torch

import dip
import dip.fit
from dip.accel import Acceleration
from dip.errors import DipError
from dip.metrics import psnr
from dip.tasks import denoise

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _noisy(size: int = 64, sigma: float = 25, seed: int = 0):
    from skimage import data

    clean = data.astronaut()[100 : 100 + size, 180 : 180 + size].astype(np.float32) / 255
    noise = np.random.default_rng(seed).normal(0, sigma / 255, clean.shape).astype(np.float32)
    return clean, (clean + noise).clip(0, 1)


def test_parse_names_variants():
    assert Acceleration.parse("bf16+channels_last") == Acceleration("bf16", channels_last=True)
    names = (
        "fp32+compile",
        "bf16+channels_last+compile",
        "tf32",
        "tf32+compile=reduce-overhead",
        "fp32+channels_last=auto",
    )
    for name in names:
        assert Acceleration.parse(name).describe() == name  # describe and parse round-trip
    assert Acceleration.parse("tf32+compile=reduce-overhead").compile == "reduce-overhead"
    with pytest.raises(DipError, match="unknown compile mode 'fast'"):
        Acceleration.parse("fp32+compile=fast")
    with pytest.raises(DipError, match="makes its own CUDA graphs"):
        Acceleration("tf32", compile="reduce-overhead", cuda_graph=True).check(torch.device("cuda"))
    with pytest.raises(DipError, match="unknown precision 'fp64'"):
        Acceleration.parse("fp64")
    with pytest.raises(DipError, match="unknown acceleration option 'nhwc'"):
        Acceleration.parse("fp32+nhwc")


def test_cuda_settings_last_only_for_the_fit():
    """torch's switches are process-wide: a deterministic fit turns them on and puts them back
    (no CUDA is needed to flip them, so this runs everywhere)."""
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cuda.matmul.allow_tf32,
    )
    with Acceleration("tf32", deterministic=True).arithmetic(torch.device("cuda")):
        assert torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark
        assert torch.backends.cuda.matmul.allow_tf32
    assert (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cuda.matmul.allow_tf32,
    ) == before


class _Layout(dip.fit.Callback):
    """Whether the network's convolution weights were laid out NHWC during the fit."""

    def on_step(self, state) -> None:
        weights = [p for p in state.net.parameters() if p.dim() == 4]
        self.nhwc = all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)


@pytest.mark.parametrize("size, channels_last, nhwc", [(64, "auto", True), (64, False, False), (32, True, True)])
def test_the_layout_follows_the_canvas_on_a_cpu_unless_chosen(size, channels_last, nhwc):
    """NHWC measured faster on a CPU from 64x64 canvases up (every skip net's canvas is at least
    that); smaller canvases, and any on CUDA, stay NCHW."""
    spy = _Layout()
    noisy = np.full((size, size, 3), 0.5, np.float32)
    dip.run(dip.Denoising(25), noisy, steps=1, device="cpu", channels_last=channels_last, callbacks=[spy])
    assert spy.nhwc is nhwc


def test_auto_layout_is_nhwc_only_on_a_cpu_from_64x64_and_other_values_are_refused():
    assert Acceleration.resolve(torch.device("cuda")).channels_last is False
    assert Acceleration.resolve(torch.device("cpu")).channels_last == "auto"
    auto = Acceleration(channels_last="auto")
    assert auto.nhwc(torch.zeros(1, 8, 64, 64)) and not auto.nhwc(torch.zeros(1, 8, 32, 64))
    with pytest.raises(DipError, match="channels_last must be True, False or 'auto'"):
        Acceleration(channels_last="yes")


def test_the_command_line_layout_option():
    from dip.cli import _recipe, build_parser

    arguments = ["denoise", "in.png", "-o", "out.png", "--sigma", "25"]
    chosen = {
        extra: _recipe(build_parser().parse_args([*arguments, *extra]))[0].options["channels_last"]
        for extra in [(), ("--channels-last",), ("--channels-last", "off")]
    }
    assert chosen == {(): "auto", ("--channels-last",): True, ("--channels-last", "off"): False}


def test_cuda_only_precisions_are_refused_on_cpu():
    clean, noisy = _noisy(32)
    for precision in ("tf32", "fp16"):
        with pytest.raises(DipError, match=f"precision {precision} needs a CUDA device"):
            denoise(noisy, 25, steps=2, device="cpu", **Acceleration(precision).options())


def test_bf16_is_refused_on_a_cpu_without_bfloat16_instructions(monkeypatch):
    clean, noisy = _noisy(32)
    monkeypatch.setattr(dip.accel, "cpu_bf16", lambda: False)
    with pytest.raises(DipError, match=r"needs one with bfloat16 instructions \(AVX-512 BF16 or AMX\)"):
        denoise(noisy, 25, steps=2, device="cpu", **Acceleration("bf16").options())


@pytest.mark.skipif(not dip.accel.cpu_bf16(), reason="needs a CPU with bfloat16 instructions")
def test_bf16_on_a_cpu_keeps_the_fit():
    """Mixed precision changes the arithmetic, not the method: the fits reach the same quality,
    their output stays float32, and a CPU run repeats exactly. One 60-step fit's PSNR moves by up
    to 1.6 dB with rounding alone (fp32 in the two layouts, seed 2), so three seeds' mean is compared."""
    clean, noisy = _noisy(48)
    options = dict(steps=60, device="cpu", early_stop=False, wiener=False)
    bf16 = Acceleration("bf16", channels_last=True).options()
    exact = [denoise(noisy, 25, **options, seed=seed) for seed in (1, 2, 3)]
    mixed = [denoise(noisy, 25, **options, **bf16, seed=seed) for seed in (1, 2, 3)]
    again = denoise(noisy, 25, **options, **bf16, seed=1)
    assert mixed[0].dtype == np.float32 and not np.array_equal(exact[0], mixed[0]) and np.array_equal(mixed[0], again)
    mean_exact, mean_mixed = (np.mean([psnr(fit, clean) for fit in fits]) for fits in (exact, mixed))
    assert mean_mixed > psnr(noisy, clean) + 2
    assert abs(mean_mixed - mean_exact) < 0.5


def test_channels_last_gives_the_same_fit_on_cpu():
    """One step agrees to float rounding; later, Adam's normalised steps amplify the different
    summation order (near-zero gradients change sign), so 30 steps agree in quality, not bits:
    how far apart depends on the CPU's kernels (0.59 dB on one x86-64 machine, under 0.5 on another)."""
    clean, noisy = _noisy(32)
    runs = {}
    for steps in (1, 30):
        for layout in (False, True):
            runs[steps, layout] = denoise(
                noisy,
                25,
                steps=steps,
                device="cpu",
                early_stop=False,
                wiener=False,  # the fit itself: what the layout could change
                **Acceleration(channels_last=layout).options(),
            )
    assert np.abs(runs[1, False] - runs[1, True]).mean() < 1e-4
    assert abs(psnr(runs[30, False], clean) - psnr(runs[30, True], clean)) < 1.0
    assert psnr(runs[30, True], clean) > psnr(runs[1, True], clean) + 5


def test_cli_refuses_fp16_on_cpu_in_one_line(tmp_path):
    from dip.io import Picture, write_image

    clean, noisy = _noisy(32)
    write_image(tmp_path / "in.png", Picture(noisy))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dip",
            "denoise",
            str(tmp_path / "in.png"),
            "-o",
            str(tmp_path / "out.png"),
            "--device",
            "cpu",
            "--precision",
            "fp16",
            "-q",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr  # (a machine's own library warnings may come first)
    assert done.stderr.strip().splitlines()[-1] == "dip: error: precision fp16 needs a CUDA device; on cpu use fp32"
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize(
    "native",
    [
        torch.nn.ReflectionPad2d(1),
        torch.nn.ReflectionPad2d(2),
        torch.nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        torch.nn.Upsample(scale_factor=2, mode="nearest"),
    ],
    ids=str,
)
def test_deterministic_twins_compute_the_same_values_and_gradients(native):
    from dip.nets.deterministic import make_deterministic

    x = torch.randn(2, 3, 7, 10, requires_grad=True, generator=torch.Generator().manual_seed(0))
    twin = make_deterministic(torch.nn.Sequential(native))
    assert type(twin[0]) is not type(native)
    gradient = torch.randn_like(native(x))
    (expected,) = torch.autograd.grad(native(x), x, gradient)
    (got,) = torch.autograd.grad(twin(x), x, gradient)
    assert torch.allclose(twin(x), native(x), atol=1e-6) and torch.allclose(got, expected, atol=1e-5)


def test_deterministic_fit_matches_the_plain_one_on_cpu():
    clean, noisy = _noisy(32)
    plain = denoise(noisy, 25, steps=1, device="cpu", early_stop=False, **Acceleration().options())
    twin = denoise(noisy, 25, steps=1, device="cpu", early_stop=False, **Acceleration(deterministic=True).options())
    assert np.abs(plain - twin).max() < 1e-4  # in the same layout: NHWC's summation order differs more


@CUDA
@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16", "fp16"])
def test_cuda_precisions_keep_psnr(precision):
    """Mixed precision (BatchNorm included) must denoise about as well as float32."""
    clean, noisy = _noisy(96)
    exact = denoise(noisy, 25, steps=600, device="cuda", **Acceleration("fp32").options())
    fast = denoise(
        noisy, 25, steps=600, device="cuda", **Acceleration(precision, channels_last=precision != "fp32").options()
    )
    assert psnr(fast, clean) > psnr(noisy, clean) + 5
    assert abs(psnr(fast, clean) - psnr(exact, clean)) < 0.5


@CUDA
def test_cuda_deterministic_runs_repeat_bitwise(tmp_path):
    """--deterministic twice from the command line: the same bytes."""
    from dip.io import Picture, write_image

    clean, noisy = _noisy(64)
    write_image(tmp_path / "in.png", Picture(noisy))
    outputs = []
    for run in range(2):
        outputs.append(tmp_path / f"out{run}.png")
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "dip",
                "denoise",
                str(tmp_path / "in.png"),
                "-o",
                str(outputs[-1]),
                "--device",
                "cuda",
                "--deterministic",
                "--sigma",
                "25",
                "--steps",
                "100",
                "-q",
            ],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
    assert outputs[0].read_bytes() == outputs[1].read_bytes()


@CUDA
def test_cuda_cli_runs_with_every_speed_option(tmp_path):
    from dip.io import Picture, read_image, write_image

    clean, noisy = _noisy(64)
    write_image(tmp_path / "in.png", Picture(noisy))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dip",
            "denoise",
            str(tmp_path / "in.png"),
            "-o",
            str(tmp_path / "out.png"),
            "--device",
            "cuda",
            "--precision",
            "bf16",
            "--channels-last",
            "--sigma",
            "25",
            "--steps",
            "300",
            "-q",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert psnr(read_image(tmp_path / "out.png").pixels, clean) > psnr(noisy, clean) + 3
