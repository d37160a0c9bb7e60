"""`dip.run` reaches every feature from Python: baselines through the same call, tiling,
checkpoints (safe, bound to their run, resumable), reports; and a user-defined Problem."""

import doctest
import importlib
import importlib.util
import os
import signal
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

import dip
from dip.callbacks import Checkpoint
from dip.degrade import add_noise
from dip.errors import DipError
from dip.fit import Callback
from dip.metrics import psnr

REPO = Path(__file__).resolve().parent.parent


def test_dip_and_the_baselines_share_one_call(astronaut_crop):
    noisy = add_noise(astronaut_crop, 25)
    problem = dip.Denoising(sigma=25)
    methods = ["dip", *problem.baselines()]
    assert {"NLM", "TV", "wavelet"} <= set(methods)
    results = {m: dip.run(problem, noisy, method=m, steps=3, device="cpu") for m in methods}
    for method, done in results.items():
        assert done.image.shape == noisy.shape and done.method == method
    assert psnr(results["wavelet"].image, astronaut_crop) > psnr(noisy, astronaut_crop) + 3
    with pytest.raises(DipError, match="unknown method 'bm4d' for denoise; choose dip, "):
        dip.run(problem, noisy, method="bm4d")


def test_a_subclass_of_a_built_in_problem_leaves_the_registry_alone():
    class Quieter(dip.Denoising):
        """A user's variant of denoising (as `benchmarks/guess_probe.py` makes one)."""

    assert dip.REGISTRY["denoise"] is dip.Denoising and Quieter not in dip.REGISTRY.values()


def test_every_registered_problem_builds_its_operator():
    assert set(dip.REGISTRY) == {
        "denoise",
        "deblock",
        "super-resolve",
        "inpaint",
        "deblur",
        "flash",
        "invert",
        "visualize",
    }
    image = torch.rand(1, 3, 64, 64)
    mask = np.ones((64, 64))
    mask[:8] = 0
    assert dip.SuperResolution(4).build_operator()(image).shape == (1, 3, 16, 16)
    assert dip.Inpainting(mask).build_operator()(image)[0, :, :8].abs().max() == 0
    assert dip.Deblurring(np.ones((3, 3))).build_operator()(image).shape == image.shape
    assert [dip.SuperResolution(8).preset_name(name) for name in ("paper", "default", "best")] == [
        "paper-x8",
        "default-x8",
        "best-x8",
    ]
    assert dip.SuperResolution(4).preset_name("default") == "default"
    assert dip.Inpainting(mask).tile((8, 0, 16, 16)) is None  # no hole there: nothing to do
    assert dip.Inpainting(mask).tile((0, 0, 16, 16)).mask.shape == (16, 16, 1)


def test_tiling_from_python_copies_tiles_without_holes():
    image = np.random.default_rng(2).random((80, 100, 3)).astype(np.float32)
    mask = np.ones((80, 100))
    mask[5:15, 5:15] = 0
    done = dip.run(dip.Inpainting(mask), image, tile=48, overlap=16, steps=3, device="cpu")
    assert done.image.shape == image.shape
    assert np.array_equal(done.image[60:, 60:], image[60:, 60:])
    assert "tiles of up to 48px" in done.fit.stop_reason
    with pytest.raises(DipError, match="tiling cannot be combined"):
        dip.run(dip.Inpainting(mask), image, tile=48, report="r", steps=1, device="cpu")


class _InterruptAt(Callback):
    """Sends this process SIGINT at a step, as Ctrl-C would."""

    def __init__(self, step: int):
        self.step = step

    def on_step(self, state) -> None:
        if state.step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def test_one_fit_tells_what_its_last_raw_output_would_score(astronaut_crop):
    """The paper preset returns its running average; the metrics also score the last raw output,
    which is what the same fit without the average returns (the average never steers the fit)."""
    from dip.bench.choice import variant

    clean = astronaut_crop[:32, :32]
    noisy = add_noise(clean, 25)
    options = dict(device="cpu", early_stop=False, seed=2, reference=clean)
    averaged = dip.run(dip.Denoising(25), noisy, preset=variant("denoise", "paper+steps=30"), **options)
    last = dip.run(dip.Denoising(25), noisy, preset=variant("denoise", "paper+steps=30+last"), **options)
    assert averaged.metrics.last_output == pytest.approx(psnr(last.image, clean), abs=1e-3)
    assert abs(averaged.metrics.last_output - psnr(averaged.image, clean)) > 0.05


def test_checkpoint_interrupt_and_resume_from_python(tmp_path, astronaut_crop):
    noisy = add_noise(astronaut_crop[:32, :32], 25)
    # PSNR tracked against the clean image is saved in the checkpoint too
    options = dict(steps=40, device="cpu", early_stop=False, seed=3, reference=astronaut_crop[:32, :32])
    whole = dip.run(dip.Denoising(25), noisy, **options)
    path = tmp_path / "run.ckpt"
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(dip.Interrupted, match="interrupted at step 16") as stopped:
        dip.run(dip.Denoising(25), noisy, checkpoint=path, checkpoint_every=10, callbacks=[_InterruptAt(15)], **options)
    assert stopped.value.step == 16 and path.exists()
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # like any output, not private
    assert signal.getsignal(signal.SIGINT) is handler  # the caller's handler is back
    resumed = dip.run(dip.Denoising(25), noisy, checkpoint=path, resume=True, **options)
    assert np.array_equal(whole.image, resumed.image) and whole.metrics.best == resumed.metrics.best
    assert not path.exists()  # complete: nothing left to resume


def test_checkpoint_of_another_run_is_refused_in_one_line(tmp_path, astronaut_crop):
    noisy = add_noise(astronaut_crop[:32, :32], 25)
    path = tmp_path / "run.ckpt"
    with pytest.raises(dip.Interrupted):
        dip.run(
            dip.Denoising(25),
            noisy,
            checkpoint=path,
            steps=30,
            device="cpu",
            early_stop=False,
            callbacks=[_InterruptAt(5)],
        )
    other = add_noise(astronaut_crop[:32, :32], 25, seed=1)
    with pytest.raises(DipError, match=r"belongs to another run: its observation_sha256 differs") as caught:
        dip.run(dip.Denoising(25), other, checkpoint=path, resume=True, steps=30, device="cpu", early_stop=False)
    assert "\n" not in str(caught.value)
    with pytest.raises(DipError, match="its preset, problem differ"):
        dip.run(dip.Denoising(50), noisy, checkpoint=path, resume=True, steps=30, device="cpu", early_stop=False)
    with pytest.raises(DipError, match="no checkpoint to resume at"):
        dip.run(dip.Denoising(25), noisy, checkpoint=tmp_path / "none.ckpt", resume=True, steps=30, device="cpu")
    with pytest.raises(DipError, match="exists from an earlier run"):
        dip.run(dip.Denoising(25), noisy, checkpoint=path, steps=30, device="cpu")


class Payload:
    """Any class: unpickling it would call code of the file's choosing."""

    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_checkpoint_carrying_a_pickled_object_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.ckpt"
    torch.save({"format": 2, "meta": {}, "net": Payload()}, path)
    with pytest.raises(DipError, match="holds objects other than tensors and plain data"):
        Checkpoint(path, resume=True)
    assert "pickled code ran" not in capsys.readouterr().out


def test_report_from_python(tmp_path, astronaut_crop):
    noisy = add_noise(astronaut_crop, 25)
    done = dip.run(
        dip.Denoising(25), noisy, steps=6, device="cpu", report=tmp_path / "report", reference=astronaut_crop
    )
    page = (tmp_path / "report" / "index.html").read_text()
    assert done.report == tmp_path / "report" / "index.html"
    for name in ("wavelet", "NLM", "TV", "reference", "Restoration process"):
        assert name in page
    assert len(done.frames) == 6 and all(f.path.exists() for f in done.frames)
    with pytest.raises(DipError, match="is not empty"):
        dip.run(dip.Denoising(25), noisy, steps=2, device="cpu", report=tmp_path / "report")


def _load_example():
    spec = importlib.util.spec_from_file_location("bayer_demosaic", REPO / "docs" / "examples" / "bayer_demosaic.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_user_defined_problem_example_beats_its_naive_baseline():
    scores = _load_example().main(size=64, steps=1000, device="cpu")  # its own stop comes later
    assert scores["dip"] > scores["bilinear"] + 1.0, scores


def test_docstring_examples_run():
    modules = (
        "dip.problems",
        "dip.run",
        "dip.canvas",
        "dip.tasks",
        "dip.io",
        "dip.operators",
        "dip.batched",
        "dip.bench.choice",
        "dip.bench.quality",
        "dip.fitstore",
        "dip.wiener",
        "dip.budget",
        "dip.baselines",
        "dip.workers",
    )
    for name in (*modules, "dip.report.animation"):
        module = importlib.import_module(name)  # the module: dip.run is also the function's name
        failed, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert tried > 0 and failed == 0, name


def test_restarts_average_independent_fits(astronaut_crop):
    noisy = add_noise(astronaut_crop[:32, :32], 25)
    options = dict(steps=5, device="cpu", early_stop=False)
    fits = [dip.run(dip.Denoising(25), noisy, seed=seed, **options).image for seed in (4, 5, 6)]
    ensemble = dip.run(dip.Denoising(25), noisy, seed=4, restarts=3, batch=1, **options)  # batched: see test_batched
    assert np.allclose(ensemble.image, np.mean(fits, axis=0), atol=1e-6)
    assert ensemble.fit.steps_run == 15 and "mean of 3 fits (seeds 4-6" in ensemble.fit.stop_reason
    with pytest.raises(DipError, match="cannot be checkpointed"):
        dip.run(dip.Denoising(25), noisy, restarts=2, checkpoint="x.ckpt", **options)


def test_best_preset_averages_four_seeds_and_an_explicit_restarts_wins(astronaut_crop):
    noisy = add_noise(astronaut_crop[:32, :32], 25)
    options = dict(steps=3, device="cpu", early_stop=False, batch=1)
    best = dip.run(dip.Denoising(25), noisy, preset="best", **options)
    assert best.fit.steps_run == 12 and "mean of 4 fits (seeds 0-3" in best.fit.stop_reason
    fits = [dip.run(dip.Denoising(25), noisy, seed=seed, **options).image for seed in range(4)]
    assert np.allclose(best.image, np.mean(fits, axis=0), atol=1e-6)  # best: the default, four seeds
    assert dip.run(dip.Denoising(25), noisy, preset="best", restarts=1, **options).fit.steps_run == 3
    assert dip.run(dip.Denoising(60), noisy, preset="best", restarts=2, **options).fit.steps_run == 6


def test_inpainting_default_reads_the_mask():
    rng = np.random.default_rng(0)
    scattered_mask = rng.random((64, 64)) >= 0.5
    stroke = np.ones((64, 64))
    stroke[20:26, 4:60] = 0  # a 6-pixel-wide line: most of its pixels have no known neighbour
    hole = np.ones((64, 64))
    hole[16:48, 16:48] = 0
    assert dip.Inpainting(scattered_mask).preset_name("default") == "default-pixels"
    assert dip.Inpainting(scattered_mask).preset_name("best") == "best-pixels"
    assert dip.Inpainting(scattered_mask).preset_name("text") == "text"
    assert dip.Inpainting(stroke).preset_name("default") == "default"
    assert dip.Inpainting(hole).preset_name("best") == "best"


def test_inpainting_holds_out_known_pixels_for_its_stop():
    mask = np.ones((64, 64))
    mask[20:26, 4:60] = 0
    problem = dip.Inpainting(mask)
    fitted, where = problem.held_out(None, seed=3)
    known = problem.mask > 0
    assert where.shape == (64, 64, 1) and not where[~known].any()
    assert 0.04 < where.sum() / known.sum() < 0.06  # holdout 0.05 of the known pixels
    assert np.array_equal(fitted.mask, problem.mask * (1 - where)) and fitted.holdout == 0
    assert not np.array_equal(problem.held_out(None, seed=4)[1], where)  # each seed its own draw
    assert dip.Inpainting(mask, holdout=0).held_out(None, seed=3) is None
    hole = np.ones((64, 64))
    hole[16:48, 16:48] = 0
    assert dip.Inpainting(hole).held_out(None, seed=3) is None  # a large hole keeps the variance rule
    tiny = np.ones((4, 4))
    tiny[1, 1] = 0
    assert dip.Inpainting(tiny).held_out(None, seed=2) is None  # the draw left nothing out: no rule to watch


def test_self_stopping_inpainting_watches_the_held_out_pixels():
    image = np.random.default_rng(5).random((32, 32, 3)).astype(np.float32)
    mask = np.ones((32, 32))
    mask[10:14, 2:30] = 0

    class Logs(Callback):
        def __init__(self):
            self.keys = set()

        def on_step(self, state):
            self.keys |= set(state.logs)

    options = dict(steps=120, device="cpu")
    logs = Logs()
    watched = dip.run(dip.Inpainting(mask), image, callbacks=[logs], **options)
    assert "held-out error" in logs.keys and "variance" not in logs.keys
    assert np.array_equal(watched.image[mask > 0], image[mask > 0])  # held-out pixels pasted back too
    logs = Logs()
    dip.run(dip.Inpainting(mask, holdout=0), image, callbacks=[logs], **options)
    assert "variance" in logs.keys and "held-out error" not in logs.keys
    unwatched = dip.run(dip.Inpainting(mask), image, steps=5, device="cpu", early_stop=False)
    fitted_all = dip.run(dip.Inpainting(mask, holdout=0), image, steps=5, device="cpu", early_stop=False)
    assert np.array_equal(unwatched.image, fitted_all.image)  # no stop, nothing held out


def test_deconvolution_baselines_do_not_ring_from_the_border():
    from dip.demo import make_case

    case = make_case("deblur", 96)
    blurred = psnr(case.observation, case.clean)
    for method in ("Wiener", "Richardson-Lucy"):
        assert psnr(dip.run(case.problem, case.observation, method=method).image, case.clean) > blurred + 1.5, method


def test_fourier_feature_input():
    from dip.canvas import fourier_features

    z = fourier_features(32, (16, 24))
    assert z.shape == (1, 32, 16, 24) and float(z.abs().max()) <= 1
    x = torch.linspace(0, 1, 24)
    assert torch.allclose(z[0, 0, 5], torch.cos(x), atol=1e-6)  # the lowest frequency: 1 radian across
    assert torch.allclose(z[0, 7, 5], torch.cos(256 * x), atol=1e-3)  # the highest: 256
    assert torch.allclose(z[0, 16 + 8, :, 3], torch.sin(torch.linspace(0, 1, 16)), atol=1e-6)  # sin of y
    with pytest.raises(DipError, match="4 channels per frequency"):
        fourier_features(30, (8, 8))


def test_saved_fits_are_read_instead_of_made_again(astronaut_crop, tmp_path, monkeypatch):
    noisy = add_noise(astronaut_crop[:32, :32], 25)
    options = dict(steps=4, device="cpu", early_stop=False, fits=tmp_path)
    made = dip.run(dip.Denoising(25), noisy, **options)
    assert made.fits_read == 0 and len(list(tmp_path.glob("*.npz"))) == 1
    read = dip.run(dip.Denoising(25), noisy, **options)
    assert read.fits_read == 1 and "1 saved fit read" in read.summary()
    assert np.array_equal(read.unrefined, made.unrefined) and np.array_equal(read.image, made.image)
    assert (read.fit.steps_run, read.fit.stop_reason) == (made.fit.steps_run, made.fit.stop_reason)
    # without the Wiener step it is the same fit, returned as it is
    raw = dip.run(dip.Denoising(25, wiener=False), noisy, **options)
    assert raw.fits_read == 1 and np.array_equal(raw.image, made.unrefined) and not raw.refined
    # another seed, budget or noise level is another fit
    for other in (dict(seed=1), dict(steps=5)):
        assert dip.run(dip.Denoising(25), noisy, **{**options, **other}).fits_read == 0
    assert dip.run(dip.Denoising(30), noisy, **options).fits_read == 0
    # a fit made by another release of dip is made again
    monkeypatch.setattr("dip.fitstore.__version__", "0.0.0")
    assert dip.run(dip.Denoising(25), noisy, **options).fits_read == 0
    assert len(list(tmp_path.glob("*.npz"))) == 5


def test_super_resolution_refines_and_shares_fits_across_kernels(astronaut_crop, tmp_path):
    """The default's refine step makes the result downscale to the input by `kernel`; the fit
    goes through the paper's operator either way, so a fit saved under one kernel serves the other."""
    from dip.degrade import downscale
    from dip.problems import to_tensor

    high, low = downscale(astronaut_crop[:64, :64], 4)
    options = dict(steps=5, device="cpu", early_stop=False, fits=tmp_path)
    done = dip.run(dip.SuperResolution(4), low, **options)
    assert done.refined and done.image.shape == high.shape and not np.array_equal(done.image, done.unrefined)
    assert "downscales exactly to the low-resolution one" in done.summary()
    downscale = dip.SuperResolution(4).downscale()
    gap = {
        name: float((downscale(to_tensor(image)) - to_tensor(low)).abs().max())
        for name, image in (
            ("refined", done.image),
            ("fit", done.unrefined),
        )
    }
    assert gap["refined"] < gap["fit"] / 10, gap
    other = dip.run(dip.SuperResolution(4, kernel="lanczos2"), low, **options)
    assert other.fits_read == 1 and np.array_equal(other.unrefined, done.unrefined)
    assert not np.array_equal(other.image, done.image)
    paper = dip.run(dip.SuperResolution(4), low, preset="paper", steps=2, device="cpu")
    assert not paper.refined and paper.unrefined is None


def test_an_ensemble_reuses_the_single_fits_of_its_seeds(astronaut_crop, tmp_path):
    noisy = add_noise(astronaut_crop[:32, :32], 25)
    options = dict(steps=4, device="cpu", early_stop=False, batch=1)
    single = dip.run(dip.Denoising(25), noisy, fits=tmp_path, **options)
    best = dip.run(dip.Denoising(25), noisy, preset="best", fits=tmp_path, **options)
    assert best.fits_read == 1 and len(list(tmp_path.glob("*.npz"))) == 4
    fresh = dip.run(dip.Denoising(25), noisy, preset="best", **options)
    assert np.allclose(best.unrefined, fresh.unrefined, atol=1e-6)
    assert not np.allclose(best.unrefined, single.unrefined, atol=1e-3)
    again = dip.run(dip.Denoising(25), noisy, preset="best", fits=tmp_path, **options)
    assert again.fits_read == 4 and np.array_equal(again.image, best.image)


def test_a_stopped_ensemble_keeps_the_fits_it_made(astronaut_crop, tmp_path):
    """Each fit is saved as it ends: a `best` run (four fits, one at a time) stopped in its third
    fit leaves the first two in the store, and the rerun reads them."""
    from dip.fit import Callback

    class StopInThird(Callback):
        started = 0

        def on_start(self, state) -> None:
            StopInThird.started += 1
            if StopInThird.started == 3:
                raise KeyboardInterrupt

    noisy = add_noise(astronaut_crop[:32, :32], 25)
    options = dict(steps=4, device="cpu", early_stop=False, batch=1, preset="best", fits=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        dip.run(dip.Denoising(25), noisy, callbacks=[StopInThird()], **options)
    assert len(list(tmp_path.glob("*.npz"))) == 2
    assert dip.run(dip.Denoising(25), noisy, **options).fits_read == 2


def test_a_killed_fit_continues_from_the_state_it_kept_in_the_store(astronaut_crop, tmp_path, monkeypatch, caplog):
    """A fit made for a fit store keeps its state there as it runs (`KEY.part`): a run killed in
    the middle of a fit loses only the steps since its last save, and the next run continues the
    fit to exactly what an uninterrupted one gives, its stop rule's state included."""
    noisy = add_noise(astronaut_crop[:32, :32], 25)
    options = dict(steps=40, device="cpu", seed=3)
    whole = dip.run(dip.Denoising(25), noisy, fits=tmp_path / "whole", **options)
    assert not list((tmp_path / "whole").glob("*.part"))  # short fits never stay long enough to save
    monkeypatch.setattr("dip.fitting.UNFINISHED_SAVE_SECONDS", 0.0)
    saving = Checkpoint.save

    def killed_after_step_25(self, state) -> None:
        saving(self, state)
        if state.step == 25:
            raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(Checkpoint, "save", killed_after_step_25)
        with pytest.raises(KeyboardInterrupt):
            dip.run(dip.Denoising(25), noisy, fits=tmp_path / "cut", **options)
    [part] = (tmp_path / "cut").glob("*.part")
    assert not list((tmp_path / "cut").glob("*.npz"))
    with caplog.at_level("INFO", logger="dip"):
        resumed = dip.run(dip.Denoising(25), noisy, fits=tmp_path / "cut", **options)
    assert "continuing its fit from step 25" in caplog.text
    assert np.array_equal(resumed.image, whole.image) and resumed.fit.steps_run == whole.fit.steps_run
    assert not part.exists() and len(list((tmp_path / "cut").glob("*.npz"))) == 1
    # the state belongs to the fit, whichever preset asked for it: `best` continues what `default` began
    with monkeypatch.context() as patched:
        patched.setattr(Checkpoint, "save", killed_after_step_25)
        with pytest.raises(KeyboardInterrupt):
            dip.run(dip.Denoising(25), noisy, fits=tmp_path / "shared", **options)
    caplog.clear()
    with caplog.at_level("INFO", logger="dip"):
        dip.run(dip.Denoising(25), noisy, fits=tmp_path / "shared", preset="best", batch=1, **options)
    assert caplog.text.count("continuing its fit from step 25") == 1
    again = dip.run(dip.Denoising(25), noisy, fits=tmp_path / "shared", **options)
    assert again.fits_read == 1 and np.array_equal(again.image, whole.image)
    # a state that cannot be continued is dropped with a warning, and the fit made afresh
    stale = tmp_path / "stale" / part.name
    stale.parent.mkdir()
    stale.write_bytes(b"not a checkpoint")
    caplog.clear()
    with caplog.at_level("INFO", logger="dip"):
        redone = dip.run(dip.Denoising(25), noisy, fits=stale.parent, **options)
    assert "starting its fit afresh: refusing checkpoint" in caplog.text
    assert np.array_equal(redone.image, whole.image) and not stale.exists()
    # a fit followed by callbacks runs whole and keeps no state to continue from
    with monkeypatch.context() as patched:
        patched.setattr(Checkpoint, "save", killed_after_step_25)
        dip.run(dip.Denoising(25), noisy, fits=tmp_path / "followed", callbacks=[Callback()], **options)
    assert not list((tmp_path / "followed").glob("*.part"))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_saves_a_store_fit_at_that_step(astronaut_crop, tmp_path, monkeypatch, caplog, signum):
    """Ctrl-C or SIGTERM in the middle of a fit made for a fit store saves the fit's state at
    that very step, however recent its last save, and stops the run (KeyboardInterrupt) without
    keeping the fit as finished; the next run continues from that step to the uninterrupted
    result, and the signal handlers are given back."""
    noisy = add_noise(astronaut_crop[:32, :32], 25)
    options = dict(steps=40, device="cpu", seed=3)
    whole = dip.run(dip.Denoising(25), noisy, fits=tmp_path / "whole", **options)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    stepping = Checkpoint.on_step

    def signalled_at_step_25(self, state) -> None:
        if state.step == 25:
            signal.raise_signal(signum)
        stepping(self, state)

    with monkeypatch.context() as patched:
        patched.setattr(Checkpoint, "on_step", signalled_at_step_25)
        with pytest.raises(KeyboardInterrupt):
            dip.run(dip.Denoising(25), noisy, fits=tmp_path / "cut", **options)
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
    [part] = (tmp_path / "cut").glob("*.part")
    assert not list((tmp_path / "cut").glob("*.npz"))
    with caplog.at_level("INFO", logger="dip"):
        resumed = dip.run(dip.Denoising(25), noisy, fits=tmp_path / "cut", **options)
    assert "continuing its fit from step 25" in caplog.text
    assert np.array_equal(resumed.image, whole.image) and not part.exists()


def test_saved_fits_are_not_read_where_the_fit_is_followed(astronaut_crop, tmp_path):
    noisy = add_noise(astronaut_crop[:32, :32], 25)
    options = dict(steps=3, device="cpu", early_stop=False, fits=tmp_path)
    dip.run(dip.Denoising(25), noisy, **options)
    watched = dip.run(dip.Denoising(25), noisy, reference=astronaut_crop[:32, :32], **options)
    assert watched.fits_read == 0 and watched.metrics is not None
    with pytest.raises(DipError, match="saved fits and a checkpoint cannot be combined"):
        dip.run(dip.Denoising(25), noisy, checkpoint=tmp_path / "run.ckpt", **options)
    with pytest.raises(DipError, match="saved fits need a problem that describes its operator"):
        dip.run(dip.Problem(lambda x: x[:, :, ::2, ::2], scale=2), noisy[::2, ::2], **options)
    (tmp_path / "file").write_text("")
    with pytest.raises(DipError, match="the fits folder is a file"):
        dip.run(dip.Denoising(25), noisy, **{**options, "fits": tmp_path / "file"})


def test_frames_kept_in_memory_each_hold_their_own_step(astronaut_crop):
    """The running average is updated in place: a frame must be a copy of it, not a view that
    later steps overwrite (every frame of an animation would show the last step)."""
    noisy = add_noise(astronaut_crop, 25)
    done = dip.run(dip.Denoising(25), noisy, steps=9, save_every=3, device="cpu")
    first, second, last = (frame.image for frame in done.frames)
    assert [frame.step for frame in done.frames] == [3, 6, 9]
    assert np.abs(first - last).max() > 1e-3 and np.abs(second - last).max() > 1e-4
