"""The batched engine: K problems fitted in one loop each get the result of their own fit.

In float32 the fused network's sums round differently from a lone network's, and a fit amplifies
such differences (Adam's first steps move every weight by about the learning rate whatever the
size of its gradient), so exactness is checked in float64, where the two agree to rounding."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import torch
from skimage import data

import dip
from dip.batched import Member, fit_batch
from dip.errors import DipError
from dip.fit import Callback, FitConfig, fit
from dip.nets import SkipSpec


def _decimate(x: torch.Tensor) -> torch.Tensor:
    return x[:, :, ::2, ::2]


def _cases(image: np.ndarray) -> dict[str, tuple[list[dip.Problem], list[np.ndarray]]]:
    """Per kind of problem, three problems of one size: other pixels, other masks."""
    rng = np.random.default_rng(0)
    crops = [image[:64, :64], image[64:128, :64], image[:64, 64:128]]
    masks = [rng.random((64, 64)) > 0.5 for _ in crops]
    user = dip.Problem(_decimate, scale=2, name="decimate")
    return {
        "denoising": ([dip.Denoising(25)] * 3, [c + rng.normal(0, 0.1, c.shape) for c in crops]),
        "super-resolution": ([dip.SuperResolution(4)] * 3, [c[::4, ::4] for c in crops]),
        "inpainting": ([dip.Inpainting(m) for m in masks], [c * m[:, :, None] for c, m in zip(crops, masks)]),
        "user-defined": ([user] * 3, [c[::2, ::2] for c in crops]),
    }


@pytest.mark.parametrize("kind", ["denoising", "super-resolution", "inpainting", "user-defined"])
def test_a_batch_gives_each_problem_its_own_fit(float64, kind):
    problems, observations = _cases(data.astronaut().astype(np.float32) / 255)[kind]
    options = dict(steps=8, seed=3, device="cpu", early_stop=False)
    together = dip.run_many(problems, [o.clip(0, 1) for o in observations], batch=3, **options)
    for problem, observation, batched in zip(problems, observations, together):
        alone = dip.run(problem, observation.clip(0, 1), **options)
        assert batched.image.shape == alone.image.shape
        fits = [r.image if r.unrefined is None else r.unrefined for r in (batched, alone)]
        assert np.abs(fits[0] - fits[1]).max() < 1e-6, kind
        # denoising's Wiener step matches blocks: a rounding-sized change in the fit may swap one of
        # two nearly equal blocks in a group, so the results agree closely but not to rounding
        assert np.abs(batched.image - alone.image).max() < 1e-3, kind
        assert batched.fit.steps_run == 8


class _StopAt(Callback):
    def __init__(self, step: int):
        self.step = step

    def on_step(self, state) -> None:
        if state.step == self.step:
            state.stop, state.stop_reason = True, f"stopped at {self.step}"


def _members(config_stops: list[int | None]) -> list[Member]:
    spec = SkipSpec(channels_down=(8,) * 3, channels_up=(8,) * 3, channels_skip=(4,) * 3)
    members = []
    for k, stop in enumerate(config_stops):
        torch.manual_seed(k)
        net = spec.build(4, 3)
        z = torch.rand(1, 4, 32, 32, generator=torch.Generator().manual_seed(k)) * 0.1
        y = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(10 + k))
        callbacks = [_StopAt(stop)] if stop else []
        members.append(Member(net, z, y, lambda x: x, torch.Generator().manual_seed(20 + k), callbacks=callbacks))
    return members


def _alone(members: list[Member], config: FitConfig):
    return [
        fit(m.net, m.z, m.target, m.operator, config, generator=m.generator, callbacks=m.callbacks) for m in members
    ]


def test_a_stopped_member_stops_changing_while_the_others_go_on(float64):
    config = FitConfig(steps=12, lr=0.01, reg_noise_std=0.05, ema=0.9)
    stops = [4, None, 7]
    together = fit_batch(_members(stops), config)
    alone = _alone(_members(stops), config)
    assert [r.steps_run for r in together] == [4, 12, 7]
    assert together[0].stop_reason == "stopped at 4"
    for batched, single in zip(together, alone):
        assert torch.allclose(batched.image, single.image, atol=1e-9)


def test_each_member_backtracks_on_its_own(float64):
    config = FitConfig(steps=25, lr=0.5, reg_noise_std=0.05, backtrack_db=0.01)  # a big step: losses jump
    together = fit_batch(_members([None] * 3), config)
    alone = _alone(_members([None] * 3), config)
    assert [r.backtracks for r in together] == [r.backtracks for r in alone]
    assert len({r.backtracks for r in alone}) > 1 and min(r.backtracks for r in alone) > 0  # they differ
    for batched, single in zip(together, alone):
        assert torch.allclose(batched.image, single.image, atol=1e-9)
        assert batched.final_loss == pytest.approx(single.final_loss, rel=1e-9)


def test_each_members_network_ends_with_the_weights_its_own_fit_ends_with(float64):
    """As after `dip.fit.fit`, which a tile's fit relies on to start the next tile's (BatchNorm's
    count of batches aside: a fused network keeps one count for all its members; a fit reads
    only the batch's own statistics)."""
    config = FitConfig(steps=12, lr=0.01, reg_noise_std=0.05)
    stops = [4, None, 7]
    members, lone = _members(stops), _members(stops)
    fit_batch(members, config, slots=2)
    _alone(lone, config)
    for batched, single in zip(members, lone):
        ended, expected = batched.net.state_dict(), single.net.state_dict()
        assert ended.keys() == expected.keys()
        counted = [name for name in expected if name.endswith("num_batches_tracked")]
        assert counted and all(
            torch.allclose(ended[name], expected[name], atol=1e-9) for name in expected if name not in counted
        )
    start, ended = _members(stops)[0].net.state_dict(), members[0].net.state_dict()
    assert not any(torch.allclose(ended[name], start[name]) for name in start if name.endswith(".weight"))


def test_tiles_fitted_in_batches_match_tiles_fitted_alone(float64):
    noisy = (data.astronaut()[:96, :96].astype(np.float32) / 255 + 0.05).clip(0, 1)
    options = dict(steps=4, device="cpu", early_stop=False, tile=64, overlap=32)
    one_by_one = dip.run(dip.Denoising(25), noisy, batch=1, **options)
    batched = dip.run(dip.Denoising(25), noisy, batch=4, **options)
    assert np.abs(batched.unrefined - one_by_one.unrefined).max() < 1e-6
    # the Wiener step works in float32 and matches blocks: a last-bit difference may regroup a block
    assert np.abs(batched.image - one_by_one.image).max() < 1e-4
    assert batched.fit.steps_run == one_by_one.fit.steps_run == 4 * 4


def test_batch_must_be_auto_or_positive():
    with pytest.raises(DipError, match="batch must be 'auto' or a whole number"):
        dip.run(dip.Denoising(25), np.zeros((32, 32, 3)), steps=1, batch=0, device="cpu")
    with pytest.raises(DipError, match="one observation"):
        dip.run_many([dip.Denoising(25)], [], steps=1)


def test_run_many_takes_one_seed_per_problem():
    noisy = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    options = dict(steps=3, device="cpu", early_stop=False, batch=1)
    many = dip.run_many([dip.Denoising(25)] * 2, [noisy] * 2, seed=[3, 4], **options)
    for seed, done in zip((3, 4), many):
        assert np.array_equal(done.image, dip.run(dip.Denoising(25), noisy, seed=seed, **options).image)
        assert done.seed == seed
    assert not np.array_equal(many[0].image, many[1].image)
    with pytest.raises(DipError, match="one seed, or one per problem"):
        dip.run_many([dip.Denoising(25)] * 2, [noisy] * 2, seed=[1])


class _Width(Callback):
    """The parameter count of the network a fit runs in, at each step."""

    def __init__(self):
        self.counts: list[int] = []

    def on_step(self, state) -> None:
        self.counts.append(sum(p.numel() for p in state.net.parameters()))


def test_the_batch_runs_on_in_a_network_of_its_live_members(float64):
    """Members stopping at steps 5, 5 and 11 leave the batch's network (4 members wide) 2 wide
    from step 6 and 1 wide from step 12; the member left still gets its own fit, backtracking
    included."""
    config = FitConfig(steps=20, lr=0.3, reg_noise_std=0.05, backtrack_db=0.01)
    stops = [5, None, 11, 5]
    members, width = _members(stops), _Width()
    members[1].callbacks = [width]
    together = fit_batch(members, config)
    alone = _alone(_members(stops), config)
    one = sum(p.numel() for p in _members([None])[0].net.parameters())
    assert width.counts == [4 * one] * 5 + [2 * one] * 6 + [one] * 9
    assert [r.steps_run for r in together] == [5, 20, 11, 5]
    assert sum(r.backtracks for r in alone) > 0
    for batched, single in zip(together, alone):
        assert batched.backtracks == single.backtracks
        assert torch.allclose(batched.image, single.image, atol=1e-9)


def test_the_batch_narrows_at_every_stop_in_the_plain_loop_and_less_often_where_it_costs():
    """A new network compiles anew under torch.compile (narrow once half the places are free),
    and is captured anew with the CUDA graph (once a quarter are); the plain loop narrows at
    every stop."""
    from dip.accel import Acceleration
    from dip.batched import narrows

    def rule(acceleration: Acceleration) -> list[bool]:
        return [narrows(acceleration, 8, live) for live in range(8, 0, -1)]

    assert rule(Acceleration()) == [False] + [True] * 7
    assert rule(Acceleration(cuda_graph=True)) == [False, False, True, True, True, True, True, True]
    assert rule(Acceleration(compile=True)) == [False, False, False, False, True, True, True, True]


def test_a_run_in_batches_logs_each_batchs_steps(caplog):
    """Four tiles, two places: the log says what the batch holds and how many steps its fits took."""
    noisy = (data.astronaut()[:96, :96].astype(np.float32) / 255 + 0.05).clip(0, 1)
    with caplog.at_level("INFO", logger="dip"):
        dip.run(
            dip.Denoising(25),
            noisy,
            steps=3,
            device="cpu",
            tile=64,
            overlap=32,
            batch=2,
            warm_tiles=False,
            progress=True,
        )
    told = [r.getMessage() for r in caplog.records if r.getMessage().startswith("batch ")]
    assert told[0] == "batch 1/1: tile 1/4 and 3 more, 2 at a time"
    assert re.fullmatch(r"batch 1/1: 4 fits, 3 steps each, \d+ s", told[1]), told[1]
    assert len(told) == 2


def test_the_batch_summary_gives_the_spread_of_the_stops():
    from dip.fit import FitResult
    from dip.fitting import batch_summary

    def done(steps: int) -> FitResult:
        return FitResult(torch.zeros(1, 3, 4, 4), steps, steps, 0.0, 0, "")

    assert batch_summary([done(s) for s in (2210, 8000, 230)], 37.2) == "3 fits, 230-8000 steps (mean 3480), 37 s"
    assert batch_summary([done(500)], 1.6) == "1 fit, 500 steps, 2 s"


def test_one_progress_bar_follows_a_batch_to_its_last_fit():
    """The first fit stops at step 4; the batch's bar goes on to the last fit's step 12 and
    closes once, when every fit has ended."""
    import io

    from dip.callbacks import ProgressBar

    members, shown = _members([4, None, 7]), io.StringIO()
    bar = ProgressBar("batch", file=shown, disable=False)
    for member in members:
        member.callbacks = [*member.callbacks, bar]
    fit_batch(members, FitConfig(steps=12))
    assert bar.bar.n == 12 and bar.running == 0
    assert "12/12" in shown.getvalue()


class _Clock(Callback):
    """A clock for progress lines: ten seconds a step of the fits it follows (`per="step"`), or
    ten seconds more each time one of them ends (`per="end"`)."""

    def __init__(self, per: str):
        self.per, self.now = per, 0.0

    def __call__(self) -> float:
        return self.now

    def on_step(self, state) -> None:
        if self.per == "step":
            self.now = 10.0 * state.step

    def on_end(self, state) -> None:
        if self.per == "end":
            self.now += 10.0


def test_progress_written_to_a_log_is_a_line_every_so_often(caplog):
    """Where the bar's stream is not a terminal, the batch's progress is a line through logging
    at most every `every` seconds (here 30 s, three steps), with the pace and the time left, and
    one line when the last fit ends; the stream itself gets nothing."""
    import io

    from dip.callbacks import ProgressBar

    members, shown, clock = _members([4, None, 7]), io.StringIO(), _Clock(per="step")
    bar = ProgressBar("batch", file=shown, every=30.0, clock=clock)
    for member in members:
        member.callbacks = [clock, *member.callbacks, bar]
    with caplog.at_level(logging.INFO, logger="dip"):
        fit_batch(members, FitConfig(steps=12))
    lines = [record.getMessage() for record in caplog.records]
    assert shown.getvalue() == ""
    assert len(lines) == 5, lines
    for line, step, left in zip(lines, (3, 6, 9, 12), ("90 s", "60 s", "30 s", "0 s")):
        assert re.fullmatch(rf"batch: step {step}/12, loss \d\.\d{{5}}, 10\.00 s a step, about {left} left", line)
    assert lines[-1] == "batch: ended at step 12 after 2 min"


def test_a_short_fit_written_to_a_log_says_nothing(caplog):
    import io

    from dip.callbacks import ProgressBar

    members, clock = _members([None]), _Clock(per="step")
    members[0].callbacks = [clock, ProgressBar("quick", file=io.StringIO(), every=1000.0, clock=clock)]
    with caplog.at_level(logging.INFO, logger="dip"):
        fit_batch(members, FitConfig(steps=12))
    assert caplog.records == []


@pytest.mark.parametrize("device_loop", [False, True])
def test_waiting_fits_take_the_places_of_stopped_ones(float64, device_loop):
    """Five fits through two places (`slots=2`): each waiting fit joins as one stops, the network
    is never wider than two, and every fit still gets its own result, backtracking included."""
    from dip.graphed import fit_on_device

    config = FitConfig(steps=12, lr=0.3, reg_noise_std=0.05, backtrack_db=0.01)
    stops = [3, None, 6, 4, 9]
    members, width = _members(stops), _Width()
    for member in members:
        member.callbacks = [*member.callbacks, width]
    if device_loop:
        together = fit_on_device(members, config, sync_every=1, capture=False, slots=2)
    else:
        together = fit_batch(members, config, slots=2)
    alone = _alone(_members(stops), config)
    one = sum(p.numel() for p in _members([None])[0].net.parameters())
    # two fits at once over batch steps 1-3 (fits 0, 1), 4-9 (1, 2), 10-12 (1, 3), 13 (3, 4); fit 4 alone after
    assert max(width.counts) == 2 * one and width.counts.count(2 * one) == 2 * (3 + 6 + 3 + 1)
    assert [r.steps_run for r in together] == [3, 12, 6, 4, 9]
    assert sum(r.backtracks for r in alone) > 0
    for batched, single in zip(together, alone):
        assert batched.backtracks == single.backtracks
        assert torch.allclose(batched.image, single.image, atol=1e-9)


def test_a_queue_counts_its_fits_as_they_end():
    import io

    from dip.callbacks import FitCounter

    members, shown = _members([3, None, 6, 4, 9]), io.StringIO()
    counter = FitCounter("queue", 5, file=shown, disable=False)
    for member in members:
        member.callbacks = [*member.callbacks, counter]
    fit_batch(members, FitConfig(steps=12), slots=2)
    assert counter.bar.n == 5 and "5/5" in shown.getvalue()


def test_a_queue_written_to_a_log_counts_its_fits_in_lines(caplog):
    """Fits end in the order 0, 2, 1, 3, 4 (after 3, 6, 12, 4, 9 steps), ten seconds apart; with a
    line at most every 15 s, the second and the fourth are told."""
    import io

    from dip.callbacks import FitCounter

    members, clock = _members([3, None, 6, 4, 9]), _Clock(per="end")
    counter = FitCounter("queue", 5, file=io.StringIO(), every=15.0, clock=clock)
    for member in members:
        member.callbacks = [clock, *member.callbacks, counter]
    with caplog.at_level(logging.INFO, logger="dip"):
        fit_batch(members, FitConfig(steps=12), slots=2)
    assert [record.getMessage() for record in caplog.records] == [
        "queue: 2/5 ended, the last after 6 steps",
        "queue: 4/5 ended, the last after 4 steps",
    ]


def test_a_fit_that_ends_lets_go_of_the_batchs_networks():
    """The networks a queue ran in are freed as it regroups: at every step at most the one it
    runs in is alive, not one more for each fit that has ended."""
    import gc
    import weakref

    seen: list[weakref.ref] = []
    alive: list[int] = []

    class Watch(Callback):
        def on_step(self, state) -> None:
            if not any(ref() is state.net for ref in seen):
                seen.append(weakref.ref(state.net))
            gc.collect()
            alive.append(sum(ref() is not None for ref in seen))

    members = _members([3, None, 6, 4, 9])
    for member in members:
        member.callbacks = [*member.callbacks, Watch()]
    fit_batch(members, FitConfig(steps=12), slots=2)
    assert len(seen) > 3 and max(alive) == 1
