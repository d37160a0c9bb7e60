import math

import numpy as np
import torch

from dip.fit import Callback, FitConfig, FitState, fit, make_adam
from dip.nets import SkipSpec
from dip.operators import Identity


def tiny_problem(seed=0):
    torch.manual_seed(seed)
    net = SkipSpec(channels_down=(8, 8), channels_up=(8, 8), channels_skip=(2, 2)).build(4, 3)
    z = torch.rand(1, 4, 16, 16) * 0.1
    target = torch.rand(1, 3, 16, 16)
    return net, z, target


class Record(Callback):
    def __init__(self):
        self.losses, self.undone = [], []

    def on_step(self, state):
        self.losses.append(state.loss)
        self.undone.append(state.backtracked)


def test_loss_decreases_and_ema_is_returned():
    net, z, target = tiny_problem()
    record = Record()
    result = fit(net, z, target, Identity(), FitConfig(steps=60, lr=0.01, reg_noise_std=0.03), callbacks=[record])
    assert record.losses[-1] < 0.7 * record.losses[0]
    assert result.steps_run == 60 and result.step == 60
    assert result.image.shape == (1, 3, 16, 16)


def test_ema_ramp_averages_over_the_recent_steps():
    """With ema_ramp the average's weight at step t is min(ema, (1 + t) / (ramp + t)): a short run
    returns an average of its recent outputs, not of its first ones."""

    class Outputs(Callback):
        def __init__(self):
            self.outputs = []

        def on_step(self, state):
            self.outputs.append(state.output.clone())

    def run(ramp):
        net, z, target = tiny_problem()
        record = Outputs()
        result = fit(net, z, target, Identity(), FitConfig(steps=30, ema=0.99, ema_ramp=ramp), callbacks=[record])
        expected = record.outputs[0]
        for step, out in enumerate(record.outputs[1:], start=2):
            weight = 0.99 if ramp is None else min(0.99, (1 + step) / (ramp + step))
            expected = weight * expected + (1 - weight) * out
        torch.testing.assert_close(result.image, expected.clamp(0, 1))
        return result.image, record.outputs[-1].clamp(0, 1)

    plain, last = run(None)
    ramped, _ = run(10)
    assert (ramped - last).abs().mean() < 0.5 * (plain - last).abs().mean()


def test_same_seed_same_result():
    results = []
    for _ in range(2):
        net, z, target = tiny_problem()
        gen = torch.Generator().manual_seed(3)
        results.append(fit(net, z, target, Identity(), FitConfig(steps=10, reg_noise_std=0.05), generator=gen).image)
    assert torch.equal(results[0], results[1])


def test_fused_adam_takes_the_same_steps_as_plain_adam():
    """The loop uses torch's fused Adam kernel for speed; its iterates must be Adam's (over a few
    steps: rounding differences grow chaotically later, as between any two Adam builds)."""
    images = []
    for fused in (True, False):
        net, z, target = tiny_problem()
        optimizer = make_adam(net, 0.01, z.device) if fused else torch.optim.Adam(net.parameters(), lr=0.01)
        assert optimizer.defaults["fused"] is (True if fused else None)
        for _ in range(5):
            optimizer.zero_grad()
            torch.mean((net(z) - target) ** 2).backward()
            optimizer.step()
        images.append(net(z).detach())
    assert torch.allclose(images[0], images[1], atol=1e-5)


class Saboteur(torch.nn.Module):
    """An operator that makes the loss jump at one step, to trigger backtracking."""

    def __init__(self, at: int):
        super().__init__()
        self.calls, self.at = 0, at

    def forward(self, x):
        self.calls += 1
        return x + 10.0 if self.calls == self.at else x


class Watch(Callback):
    """Records weights and Adam state after each step."""

    def __init__(self):
        self.weights, self.adam = [], []

    def on_step(self, state):
        self.weights.append([p.detach().clone() for p in state.net.parameters()])
        first = next(state.net.parameters())
        adam = state.optimizer.state.get(first, {})
        self.adam.append(adam["exp_avg"].clone() if "exp_avg" in adam else None)  # None: no Adam state


def test_backtracking_restores_weights_and_optimizer_and_skips_the_bad_step():
    net, z, target = tiny_problem()
    watch = Watch()
    config = FitConfig(steps=8, lr=0.01, ema=None, backtrack_lr_factor=0.5)
    result = fit(net, z, target, Saboteur(at=6), config, callbacks=[watch])
    assert result.backtracks == 1
    # Step 6 saw a jump: the weights and Adam state go back to what step 5 started from
    # (the weights that gave step 5 its good loss), and no gradient of step 6 is applied.
    before_step5 = watch.weights[3]
    for restored, saved in zip(watch.weights[5], before_step5):
        assert torch.equal(restored, saved)
    assert torch.equal(watch.adam[5], watch.adam[3])
    assert not torch.equal(watch.adam[6], watch.adam[5])  # fitting goes on afterwards


def test_a_jump_at_the_second_step_goes_back_to_a_fresh_optimizer():
    """The snapshot before Adam's first step has no Adam state: undoing to it must still work."""
    net, z, target = tiny_problem()
    start = [p.detach().clone() for p in net.parameters()]
    watch = Watch()
    result = fit(net, z, target, Saboteur(at=2), FitConfig(steps=4, ema=None), callbacks=[watch])
    assert result.backtracks == 1 and result.steps_run == 4
    for restored, saved in zip(watch.weights[1], start):
        assert torch.equal(restored, saved)
    assert watch.adam[1] is None  # undone to before Adam's first step: no Adam state
    assert torch.count_nonzero(watch.adam[2]) > 0  # Adam started afresh and went on


def test_non_finite_loss_is_undone():
    class NaNAt(Saboteur):
        def forward(self, x):
            self.calls += 1
            return x * math.nan if self.calls == self.at else x

    net, z, target = tiny_problem()
    result = fit(net, z, target, NaNAt(at=4), FitConfig(steps=6, ema=None))
    assert result.backtracks == 1
    assert torch.isfinite(result.image).all()


def test_callback_can_stop_and_select():
    class StopAt(Callback):
        def on_step(self, state):
            if state.step == 3:
                state.selected, state.selected_step = state.output.clone(), 3
            if state.step == 5:
                state.stop, state.stop_reason = True, "enough"

    net, z, target = tiny_problem()
    result = fit(net, z, target, Identity(), FitConfig(steps=50), callbacks=[StopAt()])
    assert (result.steps_run, result.step, result.stop_reason) == (5, 3, "enough")


def test_early_stopping_keeps_the_most_settled_iterate_and_stops():
    from types import SimpleNamespace

    from dip.callbacks import EarlyStopping

    stopper = EarlyStopping(patience=20, decay=0.9, warmup=5)
    state = SimpleNamespace(
        backtracked=False,
        output=None,
        estimate=None,
        logs={},
        selected=None,
        selected_step=None,
        stop=False,
        stop_reason="",
        step=0,
    )
    rng = np.random.default_rng(0)
    while not state.stop and state.step < 500:
        state.step += 1
        # iterates settle until step 60, then wander more and more (fitting the noise)
        spread = 1.0 / state.step if state.step <= 60 else 0.01 * (state.step - 60)
        state.output = torch.tensor(rng.normal(0, spread, (1, 1, 4, 4)), dtype=torch.float32)
        state.estimate = state.output
        stopper.on_step(state)
    assert state.stop and "early stop" in state.stop_reason
    assert 50 <= state.selected_step <= 75
    assert state.step == stopper.best_step + 20


def test_held_out_rule_keeps_the_estimate_that_meets_the_held_out_pixels_best():
    from dip.callbacks import EarlyStopping

    values = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    where = torch.zeros(1, 1, 8, 8)
    where[..., ::3, ::3] = 1
    stopper = EarlyStopping(patience=15, warmup=5, held_out=(where, values))
    state = FitState(net=None, optimizer=None, config=FitConfig(), z=torch.zeros(1), generator=None)
    while not state.stop and state.step < 500:
        state.step += 1
        # the estimate nears the held-out values until step 40, then drifts away (overfitting)
        distance = abs(state.step - 40) / 40 + 0.01
        state.output = state.ema = values + distance
        stopper.on_step(state)
    assert stopper.rule == "held-out" and "held-out pixels" in state.stop_reason
    assert state.selected_step == stopper.best_step == 40 and state.step == 55
    assert torch.allclose(state.selected, values + 0.01)
    assert state.logs["held-out error"] > 0.1


def test_discrepancy_rule_stops_when_the_fit_reaches_the_noise_level():
    from dip.callbacks import EarlyStopping

    stopper = EarlyStopping(noise_variance=0.01, warmup=10, loss_decay=0.5)
    state = FitState(net=None, optimizer=None, config=FitConfig(), z=torch.zeros(1), generator=None)
    state.output = torch.zeros(1, 1, 2, 2)
    losses = [0.05 * 0.97**step for step in range(200)]  # falls through 0.01 near step 53
    for loss in losses:
        state.step += 1
        state.loss = loss
        stopper.on_step(state)
        if state.stop:
            break
    assert stopper.rule == "discrepancy"
    assert 53 <= state.step <= 56 and "noise variance" in state.stop_reason


def test_default_denoise_preset_stops_by_itself_and_beats_the_noise(astronaut_crop):
    from dip.degrade import add_noise
    from dip.tasks import denoise

    noisy = add_noise(astronaut_crop, 25)
    out, info = denoise(noisy, sigma=25, device="cpu", return_info=True)
    assert info.preset.name == "default" and "early stop" in info.fit.stop_reason
    assert info.fit.steps_run < info.preset.fit.steps
    from dip.metrics import psnr

    assert psnr(out, astronaut_crop) > psnr(noisy, astronaut_crop) + 4
