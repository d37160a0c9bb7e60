"""The step decided on the device (`dip.graphed`): each problem gets the result of its plain fit.

On a CPU the step runs uncaptured (a CUDA graph needs CUDA); the decisions, the deferred reading
of the losses and the callbacks' replay are the same code. Exactness is checked in float64, as
for the batched engine (`test_batched.py`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data
from test_batched import _alone, _cases, _members, _Width

import dip
import dip.graphed
from dip.accel import Acceleration
from dip.batched import Member, fit_batch
from dip.callbacks import Checkpoint
from dip.errors import DipError
from dip.fit import FitConfig
from dip.graphed import fit_on_device

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.fixture
def graph_on_cpu(monkeypatch):
    """Let `cuda_graph=True` through on a CPU: the loop runs uncaptured there."""
    monkeypatch.setattr(Acceleration, "check", lambda self, device: None)


@pytest.mark.parametrize("kind", ["denoising", "super-resolution", "inpainting", "user-defined"])
def test_each_problem_gets_its_plain_fit(float64, graph_on_cpu, monkeypatch, kind):
    problems, observations = _cases(data.astronaut().astype(np.float32) / 255)[kind]
    observations = [o.clip(0, 1) for o in observations]
    # one layout for both: what is compared is the loop, not NHWC's summation order in fused convolutions
    options = dict(steps=9, seed=3, device="cpu", early_stop=False, channels_last=False)
    batches = []
    monkeypatch.setattr(
        dip.graphed, "fit_on_device", lambda m, *a, **kw: batches.append(len(m)) or fit_on_device(m, *a, **kw)
    )
    on_device = dip.run_many(problems, observations, batch=3, cuda_graph=True, **options)
    assert batches == [3]
    for problem, observation, done in zip(problems, observations, on_device):
        plain = dip.run(problem, observation, **options)
        fitted = (done.image, plain.image) if done.unrefined is None else (done.unrefined, plain.unrefined)
        assert np.abs(fitted[0] - fitted[1]).max() < 1e-6, kind
        # the Wiener step after a denoising fit works in float32 and matches blocks: a last-bit
        # difference may regroup a block
        assert np.abs(done.image - plain.image).max() < 1e-4, kind
        assert done.fit.steps_run == 9


@pytest.mark.parametrize("sync_every", [1, 5, 40])
def test_stops_and_backtracks_land_where_the_plain_loop_puts_them(float64, sync_every):
    config = FitConfig(steps=25, lr=0.3, reg_noise_std=0.05, ema=0.9, backtrack_db=0.01)  # losses jump
    stops = [4, None, 13]
    on_device = fit_on_device(_members(stops), config, sync_every=sync_every, capture=False)
    plain = _alone(_members(stops), config)
    assert [r.steps_run for r in on_device] == [r.steps_run for r in plain] == [4, 25, 13]
    assert [r.backtracks for r in on_device] == [r.backtracks for r in plain]
    assert sum(r.backtracks for r in plain) > 0
    for mine, theirs in zip(on_device, plain):
        assert mine.stop_reason == theirs.stop_reason
        assert torch.allclose(mine.image, theirs.image, atol=1e-9)
        assert mine.final_loss == pytest.approx(theirs.final_loss, rel=1e-9)


class _Lucky(torch.nn.Module):
    """An operator that hands the loss its target once: a loss of 0 at its `at`-th call."""

    def __init__(self, at: int, target: torch.Tensor):
        super().__init__()
        self.calls, self.at, self.target = 0, at, target

    def forward(self, x):
        self.calls += 1
        return x * 0 + self.target if self.calls == self.at else x


def test_one_lucky_low_loss_does_not_freeze_the_fit_in_any_loop(float64):
    """Judged against that loss alone, every step after it would be undone (25 of 30 here) with
    the learning rate halved each time; the bar also remembers the losses before it."""

    def members():
        built = _members([None, None])
        built[1].operator = _Lucky(5, built[1].target)
        return built

    config = FitConfig(steps=30, lr=0.01, ema=None)
    unlucky = _alone(_members([None, None]), config)
    runs = {
        "plain": _alone(members(), config),
        "batched": fit_batch(members(), config),
        "on the device": fit_on_device(members(), config, sync_every=4, capture=False),
    }
    for loop, results in runs.items():
        assert [r.backtracks for r in results] == [0, 0], loop
        # it went on fitting, to about where the fit without the lucky step ended (frozen: 0.0)
        assert results[1].final_loss == pytest.approx(unlucky[1].final_loss, rel=0.05), loop
        assert torch.allclose(results[1].image, runs["plain"][1].image, atol=1e-9), loop


@pytest.mark.parametrize("sync_every, widths", [(1, [4] * 5 + [2] * 6 + [1] * 9), (5, [4] * 5 + [2] * 10 + [1] * 5)])
def test_the_step_narrows_to_its_live_members_between_reads(float64, sync_every, widths):
    """Members stopping at steps 5, 5 and 11: the step runs on in the network of the members
    still fitting from the next read of the losses, and is captured anew there."""
    config = FitConfig(steps=20, lr=0.3, reg_noise_std=0.05, backtrack_db=0.01)
    stops = [5, None, 11, 5]
    members, width = _members(stops), _Width()
    members[1].callbacks = [width]
    on_device = fit_on_device(members, config, sync_every=sync_every, capture=False)
    plain = _alone(_members(stops), config)
    one = sum(p.numel() for p in _members([None])[0].net.parameters())
    assert width.counts == [w * one for w in widths]
    assert [r.backtracks for r in on_device] == [r.backtracks for r in plain]
    for mine, theirs in zip(on_device, plain):
        assert torch.allclose(mine.image, theirs.image, atol=1e-9)


def test_one_problem_through_fit_batch_and_fit(float64, graph_on_cpu):
    config = FitConfig(steps=10, reg_noise_std=0.03)
    graph = Acceleration(cuda_graph=True)
    [through_batch] = fit_batch(_members([None]), config, graph)
    [plain] = _alone(_members([None]), config)
    assert torch.allclose(through_batch.image, plain.image, atol=1e-9)


def test_a_first_step_that_is_not_finite_is_an_error():
    [member] = _members([None])
    member.target = torch.full_like(member.target, float("nan"))
    with pytest.raises(FloatingPointError, match="not finite at the first step"):
        fit_on_device([member], FitConfig(steps=3), capture=False)


def test_what_the_graph_cannot_do_is_refused(tmp_path):
    [member] = _members([None])
    member.callbacks = [Checkpoint(tmp_path / "fit.ckpt")]
    with pytest.raises(DipError, match="checkpoints need the plain fitting loop"):
        fit_on_device([member], FitConfig(steps=2), capture=False)
    with pytest.raises(DipError, match="needs a CUDA device"):
        Acceleration(cuda_graph=True).check(torch.device("cpu"))
    with pytest.raises(DipError, match="use bf16"):
        Acceleration("fp16", cuda_graph=True).check(torch.device("cuda"))
    assert Acceleration.parse("bf16+graph") == Acceleration("bf16", cuda_graph=True)
    assert Acceleration("tf32", cuda_graph=True).describe() == "tf32+graph"


def test_the_graph_is_the_cuda_default_where_the_plain_loop_is_not_needed():
    """'auto' (the default of `dip.run` and the command line): on for CUDA, off on a CPU, and
    off where fp16's loss scaling, a compile mode or a checkpoint needs the plain loop; an explicit
    choice stands."""
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert not Acceleration.resolve(cpu).cuda_graph
    assert Acceleration.resolve(gpu) == Acceleration("tf32", cuda_graph=True)
    assert Acceleration.resolve(gpu, "bf16").cuda_graph
    assert not Acceleration.resolve(gpu, "fp16").cuda_graph
    assert not Acceleration.resolve(gpu, compile="reduce-overhead").cuda_graph
    assert not Acceleration.resolve(gpu, checkpointed=True).cuda_graph
    assert not Acceleration.resolve(gpu, cuda_graph=False).cuda_graph
    with pytest.raises(DipError, match="needs a CUDA device"):
        Acceleration.resolve(cpu, cuda_graph=True)


def test_the_command_line_turns_the_graph_off_and_on():
    """`--no-cuda-graph` reaches `dip.run` as False, `--cuda-graph` as True, neither as 'auto'."""
    from dip.cli import _recipe, build_parser

    def graph(*flags: str):
        recipe, _ = _recipe(build_parser().parse_args(["denoise", "noisy.png", "-o", "out.png", *flags]))
        return recipe.options["cuda_graph"]

    assert [graph(), graph("--no-cuda-graph"), graph("--cuda-graph")] == ["auto", False, True]


@cuda
def test_a_checkpointed_run_on_cuda_keeps_the_plain_loop(tmp_path):
    """The default graph steps aside for a checkpoint instead of refusing it."""
    noisy = data.astronaut()[:64, :64] / 255
    done = dip.run(dip.Denoising(25), noisy, steps=30, device="cuda", checkpoint=tmp_path / "fit.ckpt")
    assert done.fit.steps_run == 30 and (tmp_path / "fit.ckpt").exists()


@cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_captured_step_matches_the_plain_one_on_cuda(precision):
    """The graph replays what the plain loop computes: same steps, same backtracks, images within
    what reordered float32 sums allow."""
    config = FitConfig(steps=60, lr=0.01, reg_noise_std=0.05, ema=0.99)
    members = [
        Member(m.net.cuda(), m.z.cuda(), m.target.cuda(), m.operator, torch.Generator("cuda").manual_seed(20 + k))
        for k, m in enumerate(_members([None, None]))
    ]
    replayed = fit_batch(members, config, Acceleration(precision, deterministic=True, cuda_graph=True))
    members = [
        Member(m.net.cuda(), m.z.cuda(), m.target.cuda(), m.operator, torch.Generator("cuda").manual_seed(20 + k))
        for k, m in enumerate(_members([None, None]))
    ]
    plain = fit_batch(members, config, Acceleration(precision, deterministic=True))
    for mine, theirs in zip(replayed, plain):
        assert mine.steps_run == theirs.steps_run == 60
        assert (mine.image - theirs.image).abs().max() < (1e-4 if precision == "fp32" else 2e-2)


@cuda
def test_the_step_is_captured_anew_as_the_batch_narrows_on_cuda():
    """Members stopping at steps 20 and 45 (reads every 25 steps): the graph is captured again for
    the 2-wide and the 1-wide network, and each member still gets its plain fit."""
    config = FitConfig(steps=60, lr=0.01, reg_noise_std=0.05, ema=0.99)

    def members():
        return [
            Member(
                m.net.cuda(),
                m.z.cuda(),
                m.target.cuda(),
                m.operator,
                torch.Generator("cuda").manual_seed(20 + k),
                callbacks=m.callbacks,
            )
            for k, m in enumerate(_members([20, None, 45]))
        ]

    graphed, width = members(), _Width()
    graphed[1].callbacks = [width]
    replayed = fit_batch(graphed, config, Acceleration("fp32", deterministic=True, cuda_graph=True))
    plain = fit_batch(members(), config, Acceleration("fp32", deterministic=True))
    one = sum(p.numel() for p in _members([None])[0].net.parameters())
    assert width.counts == [3 * one] * 25 + [2 * one] * 25 + [one] * 10
    for mine, theirs in zip(replayed, plain):
        assert mine.steps_run == theirs.steps_run
        assert (mine.image - theirs.image).abs().max() < 1e-4
