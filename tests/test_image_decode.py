"""The training decode of images: JPEG draft decoding and the square crop of non-square images."""

import io

import numpy as np
from PIL import Image, JpegImagePlugin

from distributed_ssl.data.image_io import decode_image


def _jpeg(width: int, height: int) -> bytes:
    """A smooth colour image with some edges, as a JPEG."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    pixels = np.stack([xx / width, yy / height, 0.5 + 0.5 * np.sin(xx / 17.0) * np.cos(yy / 23.0)], axis=-1)
    pixels[height // 3: height // 2, width // 4: width // 2] = (0.9, 0.1, 0.2)
    buf = io.BytesIO()
    Image.fromarray((pixels * 255).astype(np.uint8), "RGB").save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def test_draft_decode_matches_full_decode_and_is_used(monkeypatch):
    data = _jpeg(640, 480)
    scaled: list[tuple[int, int]] = []
    draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        result = draft(self, mode, size)
        scaled.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    for square in ("crop", "squash"):
        scaled.clear()
        fast = decode_image(data, "RGB", "test", size=64, draft=True, square=square).astype(np.float32)
        assert scaled == [(160, 120)]  # 1/4 scale: the most that still covers 64 px on the short side
        full = decode_image(data, "RGB", "test", size=64, draft=False, square=square).astype(np.float32)
        assert fast.shape == full.shape == (64, 64, 3)
        assert np.abs(fast - full).mean() < 2.0 and np.abs(fast - full).max() < 40  # of 255
    grey = decode_image(data, "L", "test", size=64, draft=True)
    assert grey.shape == (64, 64, 1)


def test_draft_never_decodes_below_the_target_or_touches_other_formats():
    data = _jpeg(96, 80)  # only a little larger than the target: no reduction possible
    assert np.array_equal(decode_image(data, "RGB", "t", size=64, draft=True),
                          decode_image(data, "RGB", "t", size=64, draft=False))
    buf = io.BytesIO()
    Image.open(io.BytesIO(_jpeg(320, 240))).save(buf, format="PNG")
    png = buf.getvalue()
    assert np.array_equal(decode_image(png, "RGB", "t", size=32, draft=True),
                          decode_image(png, "RGB", "t", size=32, draft=False))


def test_square_crop_keeps_the_aspect_ratio_where_squash_does_not():
    # 300 x 100: red | green | blue thirds. The central square is all green; squashing keeps all three.
    pixels = np.zeros((100, 300, 3), np.uint8)
    pixels[:, :100, 0] = pixels[:, 100:200, 1] = pixels[:, 200:, 2] = 255
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    crop = decode_image(buf.getvalue(), "RGB", "t", size=30, square="crop")
    squash = decode_image(buf.getvalue(), "RGB", "t", size=30, square="squash")
    inner = crop[:, 1:-1]  # the filter reads a pixel past the box at its edges
    assert (inner[:, :, 1] > 250).all() and (inner[:, :, [0, 2]] < 5).all()
    assert squash[:, 2, 0].min() > 250 and squash[:, -3, 2].min() > 250
