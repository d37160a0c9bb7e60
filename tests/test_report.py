"""Reports and comparisons: the paper's published results re-scored, pages built from real runs."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from dip.metrics import rgb_to_y
from dip.report.compare import Scoring, compare_folder


def test_y_channel_is_bt601_studio_range():
    assert rgb_to_y(np.zeros((1, 1, 3)))[0, 0] == pytest.approx(16 / 255)
    assert rgb_to_y(np.ones((1, 1, 3)))[0, 0] == pytest.approx(235 / 255)


def test_paper_set5_x4_averages(shared_data):
    """The paper's Set5 x4 numbers come back from its published images (its DIP outputs cover
    only the centre crop to a multiple of 32, so everything is scored there)."""
    comparison = compare_folder(shared_data / "paper" / "SR" / "Set5" / "x4", Scoring("y-psnr", shave=4, crop=32))
    assert comparison.average("bicubic") == pytest.approx(28.44, abs=0.02)
    assert comparison.average("deep_prior") == pytest.approx(29.90, abs=0.02)
    assert comparison.average("SRResNet-MSE") == pytest.approx(32.10, abs=0.02)
    assert len(comparison.images) == 5


def test_paper_denoising_sigma25_averages(shared_data):
    comparison = compare_folder(shared_data / "paper" / "Denoising" / "Color" / "25", Scoring("psnr"))
    assert comparison.average("deep_prior") == pytest.approx(31.29, abs=0.02)
    assert comparison.average("bm3d") == pytest.approx(31.42, abs=0.02)
    assert comparison.average("noisy") == pytest.approx(20.37, abs=0.02)


def run(*args):
    done = subprocess.run([sys.executable, "-m", "dip", *map(str, args)], capture_output=True, text=True, timeout=900)
    return done.returncode, done.stdout, done.stderr


def test_compare_command_writes_table_and_page(shared_data, tmp_path):
    code, out, err = run(
        "compare",
        "--folder",
        shared_data / "paper" / "SR" / "Set5" / "x4",
        "--metric",
        "y-psnr",
        "--shave",
        "4",
        "--crop",
        "32",
        "--report",
        tmp_path / "set5",
    )
    assert code == 0, err
    average = next(line for line in out.splitlines() if line.startswith("| average"))
    assert "29.89" in average or "29.90" in average or "29.91" in average
    page = (tmp_path / "set5" / "index.html").read_text()
    assert page.count('class="panel"') == 5 * 8  # 7 methods + ground truth per image
    for src in re.findall(r'<img src="([^"]+)"', page):
        assert (tmp_path / "set5" / src).exists()  # self-contained: every image inside the folder


def test_compare_single_image_and_bad_arguments(tmp_path):
    from dip.io import Picture, write_image

    rng = np.random.default_rng(0)
    clean = rng.random((40, 40, 3)).astype(np.float32)
    write_image(tmp_path / "gt.png", Picture(clean))
    write_image(tmp_path / "a.png", Picture(np.clip(clean + 0.05, 0, 1)))
    code, out, _ = run("compare", tmp_path / "gt.png", f"a={tmp_path / 'a.png'}")
    assert code == 0 and "| gt |" in out
    code, _, err = run("compare", tmp_path / "gt.png", "nonsense")
    assert code == 1 and "METHOD=FILE" in err


@pytest.mark.slow
def test_run_report_from_a_real_denoising_run(tmp_path, astronaut_crop):
    from dip.degrade import add_noise
    from dip.io import Picture, write_image

    write_image(tmp_path / "clean.png", Picture(astronaut_crop))
    write_image(tmp_path / "noisy.png", Picture(add_noise(astronaut_crop, 25)))
    code, out, err = run(
        "denoise",
        tmp_path / "noisy.png",
        "-o",
        tmp_path / "out.png",
        "--sigma",
        "25",
        "--steps",
        "60",
        "--reference",
        tmp_path / "clean.png",
        "--report",
        tmp_path / "report",
    )
    assert code == 0, err
    page = (tmp_path / "report" / "index.html").read_text()
    data = json.loads(re.search(r"const DATA = (\{.*\});", page).group(1))
    assert [f["step"] for f in data["frames"]] == list(range(2, 61, 2))  # 30 frames for 60 steps
    assert data["chosen"] == 60
    assert all(f["psnr"] is not None for f in data["frames"])
    assert "<svg" in page and "NLM" in page and "wavelet" in page and "reference" in page
    for setting in ("preset", "trainable parameters", "learning rate", "seed", "device", "wall time"):
        assert f"<th>{setting}</th>" in page
    from PIL import Image

    animation = Image.open(tmp_path / "report" / "process.webp")  # linked from the page
    assert animation.n_frames == 30 and 'href="process.webp"' in page


def test_the_process_as_an_animation(tmp_path, astronaut_crop):
    from PIL import Image

    from dip.io import Picture, write_image

    write_image(tmp_path / "noisy.png", Picture(astronaut_crop[:32, :32]))
    common = ("denoise", tmp_path / "noisy.png", "-o", tmp_path / "out.png", "--steps", "9", "--device", "cpu")
    code, _, err = run(*common, "--animation", tmp_path / "process.gif")
    assert code == 0, err
    gif = Image.open(tmp_path / "process.gif")
    assert gif.format == "GIF" and gif.n_frames == 9  # about 50 frames: every step of a short run
    code, _, err = run(*common, "--force", "--animation", tmp_path / "process.gif")
    assert code == 0, err
    code, _, err = run(*common, "--force", "--animation", tmp_path / "process.mp4")
    assert code == 1 and "an animation is a .webp or .gif file, not 'process.mp4'" in err
    code, _, err = run("denoise", tmp_path, "-o", tmp_path / "all", "--animation", tmp_path / "p.gif")
    assert code == 1 and "--animation saves one image's process" in err
