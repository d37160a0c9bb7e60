import numpy as np
import png
import pytest
from PIL import Image

from dip.errors import DipError
from dip.io import Picture, read_image, split_channels, write_image


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("depth", [8, 16])
def test_png_round_trip_keeps_values_depth_and_alpha(tmp_path, channels, depth):
    rng = np.random.default_rng(1)
    top = 255 if depth == 8 else 65535
    ints = rng.integers(0, top + 1, size=(7, 9, channels)).astype(np.uint8 if depth == 8 else np.uint16)
    picture = split_channels(ints)
    picture.bit_depth = depth
    path = write_image(tmp_path / "a.png", picture)
    back = read_image(path)
    assert back.bit_depth == depth
    assert back.pixels.shape == (7, 9, 1 if channels == 1 else 3)
    assert np.array_equal(np.round(back.pixels * top), ints[:, :, : back.pixels.shape[2]])
    if channels == 4:
        assert np.array_equal(np.round(back.alpha * top), ints[:, :, 3])


def test_16bit_rgb_png_is_read_at_full_depth(tmp_path):
    ints = (np.arange(2 * 3 * 3, dtype=np.uint16) * 3001).reshape(2, 3, 3)
    png.from_array(ints.reshape(2, 9), "RGB;16").save(tmp_path / "deep.png")
    picture = read_image(tmp_path / "deep.png")
    assert picture.bit_depth == 16
    assert np.array_equal(np.round(picture.pixels * 65535).astype(np.uint16), ints)


def test_palette_and_exif_rotation(tmp_path):
    image = Image.fromarray(np.zeros((4, 6, 3), np.uint8)).convert("P")
    image.save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").pixels.shape == (4, 6, 3)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(tmp_path / "r.jpg", exif=exif)
    assert read_image(tmp_path / "r.jpg").pixels.shape == (6, 4, 3)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "not found"),
        (b"", "empty"),
        (b"hello, not an image", "not an image"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path, content, message):
    path = tmp_path / "x.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DipError, match=message) as caught:
        read_image(path)
    assert "\n" not in str(caught.value)


def test_truncated_png(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "t.png").write_bytes((tmp_path / "a.png").read_bytes()[:300])
    with pytest.raises(DipError, match="damaged"):
        read_image(tmp_path / "t.png")


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "keep.png"
    target.write_bytes(b"precious")

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", explode)
    with pytest.raises(OSError):
        write_image(target, Picture(np.zeros((4, 4, 3), np.float32)))
    assert target.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]


def test_outputs_get_the_usual_permissions(tmp_path):
    import os
    import stat

    from dip.io import Picture, write_image

    path = write_image(tmp_path / "o.png", Picture(np.zeros((4, 4, 3), np.float32)))
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
