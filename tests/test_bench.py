"""Benchmarks run end to end on tiny budgets and write their tables as they go."""

import importlib.util
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from dip.bench.quality import SUITES, centre_box, known_pixels


def run(*args, cwd=None):
    done = subprocess.run(
        [sys.executable, "-m", "dip", *map(str, args)], capture_output=True, text=True, timeout=900, cwd=cwd
    )
    return done.returncode, done.stdout, done.stderr


def test_centre_box():
    assert centre_box(100, 90, 64, 32) == (18, 13, 64, 64)
    assert centre_box(100, 90, None, 32) == (2, 13, 96, 64)


def test_inpainting_mask_is_recovered_at_about_half(shared_data):
    from dip.io import read_image

    masked = read_image(shared_data / "paper" / "Reconstruction" / "Gray" / "50p" / "barbara_masked.png").pixels
    assert 0.45 < known_pixels(masked).mean() < 0.55
    assert known_pixels(masked).sum() == (masked.max(axis=2) > 0).sum()  # no long black runs in barbara


def test_inpainting_mask_trims_black_runs_where_dropped_pixels_may_have_joined_them():
    from dip.bench.quality import BLACK_TRIM

    rng = np.random.default_rng(1)
    clean = rng.uniform(0.2, 1, (64, 96, 1)).astype(np.float32)
    clean[20:25, 30:80] = 0  # a black bar 50 px long, inside the image
    dropped = rng.random((64, 96, 1)) < 0.5
    dropped[22, 80 : 80 + BLACK_TRIM] = True  # dropped pixels right after one row of the bar
    dropped[22, 80 + BLACK_TRIM] = False
    masked = np.where(dropped, 0, clean)
    mask = known_pixels(masked)[:, :, 0] > 0
    assert mask[20:25, 30 + BLACK_TRIM : 80 - BLACK_TRIM].all()  # the bar's middle is known black
    assert not mask[22, 80 : 80 + BLACK_TRIM].any()  # the dropped pixels next to it stay holes
    assert (mask[clean[:, :, 0] > 0] == ~dropped[clean > 0]).all()  # elsewhere, exactly the kept pixels


def test_inpainting_mask_keeps_black_lines_of_the_image_known(shared_data):
    from dip.io import read_image

    folder = shared_data / "paper" / "Reconstruction" / "Gray" / "50p"
    masked = read_image(folder / "peppers256_masked.png").pixels
    clean = read_image(folder / "peppers256_GT.png").pixels
    mask = known_pixels(masked)[:, :, 0] > 0
    assert mask[0].all() and mask[:, 0].all()  # peppers' black top row and left column
    assert (mask == ((masked[:, :, 0] > 0) | (clean[:, :, 0] == 0))).all()


def test_quality_suite_writes_rows_with_rescored_methods(shared_data, tmp_path):
    code, out, err = run(
        "bench",
        "quality",
        "--suite",
        "sr4",
        "--quick",
        "--steps",
        "2",
        "--images",
        "bird,baby",
        "--data",
        shared_data / "paper",
        "--out",
        tmp_path,
        "--device",
        "cpu",
    )
    assert code == 0, err
    [result] = list(tmp_path.glob("sr4-paper+default-quick-cpu-*.md"))
    text = result.read_text()
    assert "| baby |" in text and "| bird |" in text and "**average**" in text
    assert text.index("| bird |") < text.index("| baby |")  # the order named, not the suite's
    assert "| image | dip paper | dip default |" in text
    assert "bicubic" in text and "deep_prior" in text and "command: `dip bench quality" in text


def test_quality_names_the_images_a_suite_lacks(shared_data, tmp_path):
    code, _, err = run(
        "bench", "quality", "--suite", "sr4", "--images", "bird,babe", "--data", shared_data / "paper",
        "--out", tmp_path, "--device", "cpu",
    )  # fmt: skip
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "no image babe in suite sr4 (its images: baby, bird, butterfly, head, woman, baboon," in err
    assert not list(tmp_path.iterdir())  # no results file begun


def test_quality_refuses_an_arithmetic_the_machine_lacks_before_any_file(shared_data, tmp_path, monkeypatch):
    import dip.accel
    from dip.bench.quality import run_suite
    from dip.errors import DipError

    monkeypatch.setattr(dip.accel, "cpu_bf16", lambda: False)
    options = dict(mode="quick", steps=2, device="cpu", images=["baby"], out_dir=tmp_path)
    with pytest.raises(DipError, match="bf16 on a CPU needs one with bfloat16 instructions"):
        run_suite("sr4", shared_data / "paper", ["default"], precision="bf16", **options)
    with pytest.raises(DipError, match="precision fp16 needs a CUDA device"):
        run_suite("sr4", shared_data / "paper", ["default"], precision="fp16", **options)
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(
    not importlib.import_module("dip.accel").cpu_bf16(), reason="needs a CPU with bfloat16 instructions"
)
def test_quality_runs_in_bf16_on_a_cpu_that_has_it(shared_data, tmp_path):
    code, _, err = run(
        "bench", "quality", "--suite", "sr4", "--quick", "--steps", "2", "--preset", "default", "--images", "baby",
        "--precision", "bf16", "--data", shared_data / "paper", "--out", tmp_path, "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    [result] = list(tmp_path.glob("sr4-default-quick-cpu-*.md"))
    text = result.read_text()
    assert "arithmetic: bf16" in text and "--precision bf16" in text and "| baby |" in text


def test_quality_all_runs_each_name_in_the_suites_holding_it(shared_data, tmp_path):
    code, _, err = run(
        "bench", "quality", "--suite", "all", "--quick", "--preset", "none", "--images", "baby,F16",
        "--data", shared_data / "paper", "--out", tmp_path, "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    written = sorted(path.name.split("-")[0] for path in tmp_path.glob("*.md"))
    assert written == ["denoise25", "denoise50", "sr4", "sr8"]  # inpaint50 holds neither
    sr8 = next(tmp_path.glob("sr8-*.md")).read_text()
    assert "| baby |" in sr8 and "| F16 |" not in sr8
    code, _, err = run(
        "bench", "quality", "--suite", "all", "--images", "baby,babe", "--data", shared_data / "paper",
        "--out", tmp_path / "none", "--device", "cpu",
    )  # fmt: skip
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "no image babe in any of the suites sr4, sr8, " in err and not (tmp_path / "none").exists()


def test_mid_mode_crops_256_and_runs_the_classical_methods_there(shared_data, tmp_path):
    code, _, err = run(
        "bench", "quality", "--suite", "denoise25", "--mid", "--steps", "2", "--preset", "default",
        "--images", "F16", "--data", shared_data / "paper", "--out", tmp_path, "--device", "cpu", "-q",
    )  # fmt: skip
    assert code == 0, err
    assert "[1-1/1] F16" not in err and "results:" not in err  # -q: warnings only
    [result] = list(tmp_path.glob("denoise25-default-mid-cpu-*.md"))
    text = result.read_text()
    assert "centre crops of 256 px" in text and "| F16 |" in text
    header = next(line for line in text.splitlines() if line.startswith("| image"))
    assert "wavelet (run here)" in header and "NLM (run here)" in header and "| bm3d |" in header  # published too
    assert ("CBM3D (run here)" in header) == (importlib.util.find_spec("bm3d") is not None)  # an optional extra
    assert ("- not run here: CBM3D (install the `bm3d` extra)" in text) == ("CBM3D (run here)" not in header)
    row = next(line for line in text.splitlines() if line.startswith("| F16"))
    wavelet = float(row.split("|")[header.split("|").index(" wavelet (run here) ")])
    assert 25 < wavelet < 35  # sigma 25 noise (20.2 dB) removed on the same 256 px crop
    assert header.startswith("| image | dip default | unrefined default | ")  # the default's Wiener step, scored apart
    cells = row.split(" | ")
    assert float(cells[1]) != float(cells[2])


def test_quality_reads_saved_fits_and_best_reuses_the_default_fits(shared_data, tmp_path):
    def scores() -> tuple[str, list[str]]:
        code, _, err = run(
            "bench", "quality", "--suite", "denoise25", "--quick", "--steps", "2", "--preset", "default,best",
            "--images", "F16", "--data", shared_data / "paper", "--out", tmp_path / "out", "--device", "cpu",
            "--fits", tmp_path / "fits",
        )  # fmt: skip
        assert code == 0, err
        newest = max((tmp_path / "out").glob("denoise25-default+best-quick-cpu-*.md"), key=lambda p: p.stat().st_mtime)
        text = newest.read_text()
        row = next(line for line in text.splitlines() if line.startswith("| F16"))
        return text, row.split(" | ")[1:5]  # dip default, dip best, unrefined default, unrefined best

    text, first = scores()
    assert f"- fits: read from `{tmp_path / 'fits'}`" in text
    assert len(list((tmp_path / "fits").glob("*.npz"))) == 4  # best's seed 0 is default's fit
    _, again = scores()
    assert again == first and len(list((tmp_path / "fits").glob("*.npz"))) == 4


def _table(path: Path, title: str, header: str, *rows: str) -> Path:
    """A results file of `dip bench quality` as merge reads it: its title, header and rows."""
    separator = "|---" * (header.count("|") - 1) + "|"
    path.write_text("\n".join([f"# {title}", "", header, separator, *rows]) + "\n")
    return path


def _results_file(path: Path, rows: list[str]) -> Path:
    """An sr4 `default` mid table with `rows` and an average row that merge must skip."""
    header = "| image | dip default | deep_prior | bicubic (run here) | steps default | seconds default |"
    average = "| **average** (steps, seconds: totals) | **0** | 0 | 0 | 0 | 0 |"
    return _table(path, "sr4: presets `default`, mid mode", header, *rows, average)


def test_merge_takes_each_images_last_row_in_the_suites_order_with_set_averages(shared_data, tmp_path):
    first = _results_file(
        tmp_path / "a.md",
        ["| head | 30.00 | 31.00 | 29.00 | 1000 | 60 |", "| baby | 34.00 | 34.00 | 33.00 | 1000 | 60 |"],
    )
    second = _results_file(
        tmp_path / "b.md",
        ["| head | 32.00 | 31.00 | 29.00 | 4000 | 240 |", "| zebra | 25.00 | 24.00 | 23.00 | 4000 | 240 |"],
    )
    code, _, err = run("bench", "merge", first, second, "--data", shared_data / "paper", "--out", tmp_path)
    assert code == 0, err
    [merged] = list(tmp_path.glob("sr4-default-mid-merged-*.md"))
    rows = [line for line in merged.read_text().splitlines() if line.startswith("| ") and "image" not in line]
    assert [row.split(" | ")[0] for row in rows[:3]] == ["| baby", "| head", "| zebra"]  # Set5 first, by name
    assert "| head | 32.00 | 31.00 | 29.00 | 4000 | 240 |" in rows  # the later file's row
    assert rows[3].startswith("| **average Set5** (2) | **33.00** | 32.50 | 31.00 |")
    assert rows[4].startswith("| **average Set14** (1) | **25.00** |")
    assert rows[5].startswith("| **average** (steps, seconds: totals) | **30.33** |")
    assert "3 of 19 images" in merged.read_text()


def test_merge_keeps_unrefined_scores_where_a_file_has_them(shared_data, tmp_path):
    title = "denoise25: presets `default`, mid mode"
    old = _table(
        tmp_path / "old.md", title, "| image | dip default | CBM3D | steps default | seconds default |",
        "| F16 | 31.00 | 32.00 | 900 | 90 |", "| hill | 30.00 | 30.50 | 800 | 80 |",
    )  # fmt: skip
    new = _table(
        tmp_path / "new.md", title,
        "| image | dip default | unrefined default | CBM3D | steps default | seconds default |",
        "| hill | 30.40 | 30.10 | 30.50 | 1000 | 100 |",
    )  # fmt: skip
    code, _, err = run("bench", "merge", old, new, "--data", shared_data / "paper", "--out", tmp_path)
    assert code == 0, err
    [merged] = list(tmp_path.glob("denoise25-default-mid-merged-*.md"))
    lines = merged.read_text().splitlines()
    assert "| image | dip default | unrefined default | CBM3D | steps default | seconds default |" in lines
    assert "| F16 | 31.00 | - | 32.00 | 900 | 90 |" in lines  # an old row: no unrefined score
    assert "| hill | 30.40 | 30.10 | 30.50 | 1000 | 100 |" in lines
    assert "| **average** (steps, seconds: totals) | **30.70** | 30.10 (1 of 2) | 31.25 | 1900 | 190 |" in lines
    code, _, err = run("bench", "merge", merged, "--data", shared_data / "paper", "--out", tmp_path)
    assert code == 0, err  # a merged table reads back, its - cells too


def test_merge_keeps_the_presets_every_file_has(shared_data, tmp_path):
    columns = (
        "| image | dip default | dip best | deep_prior | steps default | steps best | seconds default | seconds best |"
    )
    both = _table(
        tmp_path / "both.md", "sr4: presets `default`, `best`, full mode", columns,
        "| bird | 33.00 | 33.50 | 31.78 | 4000 | 16000 | 500 | 1300 |",
    )  # fmt: skip
    one = _table(
        tmp_path / "one.md", "sr4: presets `default`, full mode",
        "| image | dip default | deep_prior | steps default | seconds default |", "| baby | 32.80 | 31.50 | 4000 | 3 |",
    )  # fmt: skip
    code, _, err = run("bench", "merge", both, one, "--data", shared_data / "paper", "--out", tmp_path)
    assert code == 0, err
    [merged] = list(tmp_path.glob("sr4-default-full-merged-*.md"))
    text = merged.read_text()
    assert "- not in every file, left out: `best`" in text
    assert "| image | dip default | deep_prior | steps default | seconds default |" in text
    assert "| **average** (steps, seconds: totals) | **32.90** | 31.64 | 8000 | 503 |" in text
    best_only = _table(
        tmp_path / "best.md", "sr4: presets `best`, full mode",
        "| image | dip best | deep_prior | steps best | seconds best |", "| bird | 33.50 | 31.78 | 16000 | 1300 |",
    )  # fmt: skip
    code, _, err = run("bench", "merge", best_only, one, "--data", shared_data / "paper", "--out", tmp_path)
    assert code == 1 and "the files share no preset; found best; default" in err


def test_merge_refuses_files_of_different_suites(shared_data, tmp_path):
    sr4 = _results_file(tmp_path / "a.md", ["| baby | 34.00 | 34.00 | 33.00 | 1000 | 60 |"])
    other = tmp_path / "b.md"
    other.write_text(sr4.read_text().replace("# sr4:", "# sr8:"))
    code, _, err = run("bench", "merge", sr4, other, "--data", shared_data / "paper", "--out", tmp_path)
    assert code == 1 and err.count("\n") == 1 and "must share one suite and mode; found sr4 mid; sr8 mid" in err
    code, _, err = run("bench", "merge", tmp_path / "none.md", "--out", tmp_path)
    assert code == 1 and "no such results file" in err


def test_full_mode_runs_on_the_whole_image(shared_data, tmp_path):
    """Full mode (for a GPU) takes the same path without the crop: here 2 steps on Set14's face at x8."""
    code, out, err = run(
        "bench",
        "quality",
        "--suite",
        "sr8",
        "--preset",
        "default",
        "--steps",
        "2",
        "--images",
        "face",
        "--data",
        shared_data / "paper",
        "--out",
        tmp_path,
        "--device",
        "cpu",
    )
    assert code == 0, err
    [result] = list(tmp_path.glob("sr8-default-full-cpu-*.md"))
    text = result.read_text()
    assert "protocol: full images" in text and "| image | dip default | unrefined default | LapSRN |" in text
    row = next(line for line in text.splitlines() if line.startswith("| face |")).split(" | ")
    assert row[-2] == "2"  # steps


def test_published_only_tables_give_the_papers_averages_per_set(shared_data, tmp_path):
    """`--preset none` re-scores the published outputs with the full protocol: the paper's DIP
    columns come back per set (Set5 29.90, Set14 27.01 in the paper; x8, input noise 0.05, 25.89 / 24.15)."""
    for suite, method, expected in (
        ("sr4", "deep_prior", {"Set5": 29.90, "Set14": 27.01}),
        ("sr8", "deep_prior_005", {"Set5": 25.89, "Set14": 24.15}),
    ):
        code, out, err = run(
            "bench",
            "quality",
            "--suite",
            suite,
            "--preset",
            "none",
            "--data",
            shared_data / "paper",
            "--out",
            tmp_path,
            "--device",
            "cpu",
        )
        assert code == 0, err
        lines = (tmp_path / f"{suite}-published-full-cpu-{date.today().isoformat()}.md").read_text().splitlines()
        header = next(line for line in lines if line.startswith("| image |")).split(" | ")
        column = header.index(method)
        for group, value in expected.items():
            row = next(line for line in lines if line.startswith(f"| **average {group}**")).split(" | ")
            assert float(row[column]) == pytest.approx(value, abs=0.02)


def test_unknown_preset_is_refused_before_anything_runs(shared_data, tmp_path):
    code, out, err = run(
        "bench",
        "quality",
        "--suite",
        "denoise25",
        "--quick",
        "--preset",
        "paper,fastest",
        "--data",
        shared_data / "paper",
        "--out",
        tmp_path,
        "--device",
        "cpu",
    )
    assert code == 1 and "unknown preset 'fastest'" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_speed_bench_reports_flops_and_memory(tmp_path):
    code, out, err = run("bench", "speed", "--sizes", "64", "--steps", "2", "--out", tmp_path, "--device", "cpu")
    assert code == 0, err
    [result] = list(tmp_path.glob("speed-cpu-*.md"))
    row = next(line for line in result.read_text().splitlines() if line.startswith("| denoise/paper"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "2,217,831" and cells[2] == "64" and cells[3] == "fp32"
    assert float(cells[5]) > 1  # GFLOP per step at 64x64: forward + backward of a 2.2M-parameter net
    assert float(cells[8]) > 50  # peak resident memory in MB
    code, _, err = run("bench", "speed", "--variants", "fp32,fp64", "--out", tmp_path)
    assert code == 1 and "unknown precision 'fp64'" in err


def test_speed_bench_times_batches_per_problem(tmp_path):
    from dip.bench.speed import measure_batch

    two = measure_batch("denoise", "default", 64, 2, steps=2, warmup=1, device="cpu")
    assert two["per_problem"] == pytest.approx(two["ms"] / 2) and two["peak_mb"] > 50
    code, _, err = run("bench", "speed", "--sizes", "64", "--batches", "1,0", "--out", tmp_path)
    assert code == 1 and "batch sizes are comma-separated whole numbers of at least 1" in err


def test_time_to_quality_table(shared_data, tmp_path):
    code, out, err = run(
        "bench",
        "speed",
        "--sizes",
        "64",
        "--steps",
        "1",
        "--out",
        tmp_path,
        "--device",
        "cpu",
        "--ttq",
        "--ttq-steps",
        "3",
        "--ttq-crop",
        "64",
        "--ttq-images",
        "F16",
        "--ttq-presets",
        "paper,paper-sigma50,default@fp32+channels_last",
        "--data",
        shared_data / "paper",
    )
    assert code == 0, err
    text = next(tmp_path.glob("speed-cpu-*.md")).read_text()
    assert "Time to quality" in text
    assert "| denoise | F16 64px | paper | 3 |" in text and "| denoise | F16 64px | paper-sigma50 | 3 |" in text
    assert "| denoise | F16 64px | default@fp32+channels_last | 3 |" in text
    assert "`paper-sigma50` vs `paper`'s best" in text and "(target: >= -0.30 dB in <= 1/10)" in text
    code, _, err = run("bench", "speed", "--ttq", "--ttq-presets", "paper,nope", "--out", tmp_path)
    assert code == 1 and "unknown preset 'nope'" in err


def test_results_are_never_overwritten(tmp_path):
    from dip.bench.results import fresh_path

    first = tmp_path / "speed-cpu-2026-01-01.md"
    assert fresh_path(first) == first
    first.write_text("kept")
    assert fresh_path(first).name == "speed-cpu-2026-01-01-2.md"


def test_suites_cover_the_papers_tables():
    assert set(SUITES) == {"sr4", "sr8", "denoise25", "denoise50", "inpaint50"}


def test_densest_window_finds_the_text():
    import numpy as np

    from dip.bench.speed import densest_window

    holes = np.zeros((100, 120), bool)
    holes[70:80, 90:110] = True
    top, left, h, w = densest_window(holes, 32)
    assert (h, w) == (32, 32) and holes[top : top + 32, left : left + 32].sum() == 200


def test_preset_variants_are_named_changes():
    from dip.bench.choice import variant
    from dip.errors import DipError
    from dip.presets import StopRule

    base = variant("denoise", "paper")
    changed = variant("denoise", "paper+fourier+no-halving+last+steps=1800")
    assert changed.input == "fourier" and changed.fit.reg_noise_std == 0 and base.fit.reg_noise_std > 0
    assert changed.fit.backtrack_lr_factor == 1.0 and changed.fit.ema is None and changed.fit.steps == 1800
    assert changed.net == base.net and changed.name == "paper+fourier+no-halving+last+steps=1800"
    borrowed = variant("inpaint", "default+net=denoise/default+lr=0.005")
    assert borrowed.net == variant("denoise", "default").net and borrowed.fit.lr == 0.005
    averaged = variant("denoise", "default+ema=0.999+ramp=4").fit
    assert (averaged.ema, averaged.ema_ramp) == (0.999, 4.0)
    assert variant("flash", "default").stop is None and variant("flash", "default+stop+variance").stop == StopRule(
        discrepancy=False
    )
    with pytest.raises(DipError, match="unknown change 'faster'"):
        variant("denoise", "default+faster")


def test_optional_baselines_that_cannot_run_are_named_with_their_extra(monkeypatch):
    from dip import baselines

    monkeypatch.setattr(baselines, "_has", lambda module: module != "bm3d")
    assert baselines.missing("denoise") == ["CBM3D (install the `bm3d` extra)"]
    assert "CBM3D" not in baselines.for_task("denoise") and baselines.missing("inpaint") == []


def _variants_script():
    spec = importlib.util.spec_from_file_location("variants", Path(__file__).parents[1] / "benchmarks" / "variants.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_variant_fit_split_over_sittings_ends_as_one_run(shared_data, tmp_path, monkeypatch):
    import os
    import signal

    import dip
    from dip.fit import Callback

    variants = _variants_script()
    common = ["--task", "denoise", "--variants", "default+steps=40", "--images", "1", "--crop", "32"]
    variants.run_variants([*common, "--out", str(tmp_path / "whole")])
    (whole,) = (tmp_path / "whole").iterdir()

    class TermAt(Callback):
        def on_step(self, state) -> None:
            if state.step == 15:
                os.kill(os.getpid(), signal.SIGTERM)

    fit = dip.run

    def interrupted(*args, callbacks=(), **options):
        return fit(*args, callbacks=[*callbacks, TermAt()], **options)

    monkeypatch.setattr(dip, "run", interrupted)
    kept, out = tmp_path / "kept", tmp_path / "split"
    kept.mkdir()
    split = [*common, "--out", str(out), "--checkpoints", str(kept)]
    with pytest.raises(dip.Interrupted, match="interrupted at step 16"):
        variants.run_variants(split)
    assert not out.exists()  # no row yet, so no results file
    assert {p.suffix for p in kept.iterdir()} == {".pt", ".seconds", ".classical"}
    monkeypatch.setattr(dip, "run", fit)
    variants.run_variants(split)
    (first,) = out.iterdir()

    def cells(path):
        return path.read_text().splitlines()[-1].split(" | ")  # the one row

    assert cells(first)[:-1] == cells(whole)[:-1]  # the same fit, to the step: all but the seconds
    assert {p.suffix for p in kept.iterdir()} == {".row", ".classical"}  # the checkpoint is gone
    monkeypatch.setattr(dip, "run", None)  # nothing is fitted again: the ended fit's row is repeated
    variants.run_variants(split)
    (second,) = set(out.iterdir()) - {first}
    assert cells(second) == cells(first)
    with pytest.raises(SystemExit, match="variants: checkpoint folder does not exist"):
        monkeypatch.setattr(sys, "argv", ["variants.py", *common, "--checkpoints", str(tmp_path / "none")])
        variants.main()
