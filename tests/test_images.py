"""Image files: channels and bit depths survive a round trip (16-bit colour included, which Pillow alone
would truncate to 8 bits), and unsupported requests fail with one clear line."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgeir.data.images import from_array, read_image, to_array, write_image
from edgeir.errors import ImageError

CASES = [(np.uint8, ()), (np.uint8, (2,)), (np.uint8, (3,)), (np.uint8, (4,)), (np.uint16, ()),
         (np.uint16, (3,)), (np.uint16, (4,))]


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("dtype, channels", CASES)
def test_round_trip_keeps_depth_and_channels(tmp_path, suffix, dtype, channels):
    arr = np.random.default_rng(0).integers(0, np.iinfo(dtype).max, (9, 13, *channels), dtype=dtype)
    write_image(tmp_path / f"x{suffix}", from_array(arr))
    back = to_array(read_image(tmp_path / f"x{suffix}"))
    assert back.dtype == dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


def test_sixteen_bit_colour_is_not_truncated(tmp_path):
    arr = np.full((4, 4, 3), 1000, np.uint16)  # 1000/65535 would round to 4/255 at 8 bits
    write_image(tmp_path / "x.png", from_array(arr))
    assert Image.open(tmp_path / "x.png").mode == "RGB"  # what Pillow alone would see
    pic = read_image(tmp_path / "x.png")
    assert pic.bit_depth == 16
    np.testing.assert_allclose(pic.rgb, 1000 / 65535, rtol=1e-6)


def test_grey_16bit_png_with_alpha(tmp_path):
    arr = np.random.default_rng(1).integers(0, 65535, (5, 6, 2), dtype=np.uint16)
    write_image(tmp_path / "x.png", from_array(arr))
    np.testing.assert_array_equal(to_array(read_image(tmp_path / "x.png")), arr)


def test_unsupported_requests_are_one_line(tmp_path):
    with pytest.raises(ImageError, match="cannot hold 16-bit colour"):
        write_image(tmp_path / "x.jpg", from_array(np.zeros((4, 4, 3), np.uint16)))
    assert not list(tmp_path.iterdir())  # nothing half-written
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="is a folder"):
        read_image(tmp_path)
