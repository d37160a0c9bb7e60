import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from dip.cli import EXIT_INTERRUPTED, main


def run(*args):
    """Run `python -m dip` as a user would; return (exit code, stdout, stderr)."""
    done = subprocess.run([sys.executable, "-m", "dip", *map(str, args)], capture_output=True, text=True, timeout=900)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 37, 3), dtype=np.uint8)).save(tmp_path / "ok.png")
    Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(tmp_path / "small.png")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "trunc.png").write_bytes((tmp_path / "ok.png").read_bytes()[:150])
    return tmp_path


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["missing.png", "-o", "o.png"], 1, "input file not found: missing.png"),
        (["empty.png", "-o", "o.png"], 1, "input file is empty (0 bytes)"),
        (["text.png", "-o", "o.png"], 1, "not an image file"),
        (["trunc.png", "-o", "o.png"], 1, "damaged or unsupported image"),
        (["small.png", "-o", "o.png"], 1, "too small"),
        (["ok.png", "-o", "nowhere/o.png"], 1, "output folder does not exist"),
        (["ok.png", "-o", "ok.png"], 1, "is the input file"),
        (["ok.png", "-o", "o.xyz"], 1, "unknown extension"),
        (["ok.png", "-o", "o.png", "--sigma", "-3"], 2, "argument --sigma: must be > 0"),
        (["ok.png", "-o", "o.png", "--steps", "0"], 2, "argument --steps: must be >= 1"),
        (["ok.png", "-o", "o.png", "--steps", "many"], 2, "argument --steps: must be an integer"),
        (["ok.png", "-o", "o.png", "--preset", "nope"], 1, "unknown preset 'nope'"),
        (["ok.png", "-o", "o.png", "--reference", "small.png"], 1, "must match"),
        (["ok.png", "-o", "o.png", "--fits", "ok.png"], 1, "the fits folder is a file"),
        (["ok.png", "-o", "o.png", "--fits", "f", "--checkpoint", "c"], 1, "saved fits and a checkpoint cannot"),
    ],
)
def test_bad_input_one_line_error(folder, monkeypatch, capsys, args, code, message):
    monkeypatch.chdir(folder)
    with pytest.raises(SystemExit) if code == 2 else _nothing():
        assert main(["denoise", *args]) == code
    err = capsys.readouterr().err
    if code == 2:
        assert err.count("\n") == 1
    else:
        assert err.count("\n") == 1 and err.startswith("dip: error: ")
    assert message in err
    assert "Traceback" not in err
    assert not (folder / "o.png").exists()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_existing_output_is_kept_without_force(folder):
    (folder / "o.png").write_bytes(b"mine")
    code, _, err = run("denoise", folder / "ok.png", "-o", folder / "o.png", "--steps", "1")
    assert code == 1 and "already exists" in err
    assert (folder / "o.png").read_bytes() == b"mine"


def test_denoise_command_end_to_end(folder):
    code, out, err = run(
        "denoise",
        folder / "ok.png",
        "-o",
        folder / "o.png",
        "--steps",
        "3",
        "--reference",
        folder / "ok.png",
        "--save-every",
        "2",
        "--sigma",
        "25",
    )
    assert code == 0, err
    assert "PSNR" in err and "preset denoise/default, 152,199 parameters" in err and out == ""
    assert Image.open(folder / "o.png").size == (37, 40)
    assert sorted(p.name for p in (folder / "o_steps").iterdir()) == ["step_000002.png", "step_000003.png"]


def test_presets_lists_the_paper_counts():
    code, out, _ = run("presets")
    assert code == 0
    for count in ["2,217,831", "3,002,627", "2,157,955", "2,184,307"]:
        assert count in out


@pytest.mark.slow
def test_denoise_a_crop_of_the_paper_image_improves_psnr(shared_data, tmp_path):
    from dip.degrade import add_noise
    from dip.io import Picture, read_image, write_image
    from dip.metrics import psnr

    clean = read_image(shared_data / "dip" / "denoising" / "F16_GT.png").pixels[200:264, 200:264]
    write_image(tmp_path / "clean.png", Picture(clean))
    write_image(tmp_path / "noisy.png", Picture(add_noise(clean, 25)))
    code, out, err = run(
        "denoise",
        tmp_path / "noisy.png",
        "-o",
        tmp_path / "out.png",
        "--sigma",
        "25",
        "--steps",
        "250",
        "--reference",
        tmp_path / "clean.png",
        "--device",
        "cpu",
    )
    assert code == 0, err
    noisy = read_image(tmp_path / "noisy.png").pixels
    restored = read_image(tmp_path / "out.png").pixels
    assert psnr(restored, clean) > psnr(noisy, clean) + 3
    assert "PSNR" in err


def test_every_registered_problem_is_a_subcommand():
    import dip
    from dip.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    assert set(dip.REGISTRY) <= set(commands)
    assert "--sigma" in commands["denoise"].format_help() and "--mask" in commands["inpaint"].format_help()
    assert "--workers" not in commands["flash"].format_help()  # two images per job: no folder batches


@pytest.mark.parametrize("task", ["denoise", "super-resolve", "inpaint", "deblur", "flash"])
def test_demo_runs_every_task_on_a_built_in_photo(tmp_path, task):
    code, out, err = run("demo", "--task", task, "--size", "64", "--steps", "3", "--device", "cpu", "-o", tmp_path)
    assert code == 0, err
    assert "PSNR input" in err and "dip" in err and out == ""
    assert (tmp_path / task / "restored.png").is_file() and (tmp_path / task / "clean.png").is_file()


def test_quiet_leaves_only_warnings_and_verbose_is_accepted(folder):
    code, out, err = run("denoise", folder / "ok.png", "-o", folder / "q.png", "--steps", "2", "-q")
    assert code == 0 and out == "" and err == ""
    code, _, err = run("denoise", folder / "ok.png", "-o", folder / "v.png", "--steps", "2", "-v")
    assert code == 0 and "wrote" in err


def test_inpaint_keeps_known_pixels_unless_fit_known(tmp_path):
    rng = np.random.default_rng(0)
    image = (rng.random((48, 48, 3)) * 255).astype(np.uint8)
    mask = np.full((48, 48), 255, np.uint8)
    mask[16:32, 16:32] = 0
    Image.fromarray(image).save(tmp_path / "in.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    common = ("--mask", tmp_path / "mask.png", "--steps", "3", "--device", "cpu", "-q")
    assert run("inpaint", tmp_path / "in.png", "-o", tmp_path / "kept.png", *common)[0] == 0
    assert run("inpaint", tmp_path / "in.png", "-o", tmp_path / "fitted.png", "--fit-known", *common)[0] == 0
    known = mask > 0
    kept, fitted = (np.asarray(Image.open(tmp_path / f"{name}.png")) for name in ("kept", "fitted"))
    assert np.array_equal(kept[known], image[known])
    assert np.abs(fitted[known].astype(int) - image[known]).mean() > 10  # 3 steps: far from the input


def test_saved_fits_from_the_command_line(folder, monkeypatch, capsys):
    monkeypatch.chdir(folder)
    common = ["denoise", "ok.png", "--sigma", "25", "--steps", "2", "--device", "cpu", "--fits", "fits"]
    assert main([*common, "-o", "first.png"]) == 0
    assert main([*common, "-o", "again.png"]) == 0
    assert "1 saved fit read" in capsys.readouterr().err
    assert np.array_equal(np.asarray(Image.open("first.png")), np.asarray(Image.open("again.png")))
    assert len(list((folder / "fits").glob("*.npz"))) == 1

    def stopped(*_) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("dip.fitstore.FitStore.save", stopped)
    assert main([*common, "--seed", "1", "-o", "stopped.png"]) == EXIT_INTERRUPTED
    assert "are in fits: the same command goes on from there" in capsys.readouterr().err
    assert not (folder / "stopped.png").exists()


def test_the_command_line_recorded_in_reports_can_be_run_again(monkeypatch):
    """Reports and results files quote the command as a shell would: a path with a space stays one argument."""
    from dip.cli_args import command_line

    monkeypatch.setattr("sys.argv", ["/usr/bin/dip", "denoise", "my photo.png", "--sigma", "25"])
    assert command_line() == "dip denoise 'my photo.png' --sigma 25"
