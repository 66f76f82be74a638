"""Image bytes → 8-bit pixels: the one place that opens images, for the converter and the training decode alike.

Pillow's own `convert("L")` clips 16- and 32-bit modes (a mid-grey 16-bit PNG becomes white) and drops alpha;
here high-bit modes are scaled by their bit range and transparent pixels are composited on a fixed background,
so a record decodes the same way in `dssl data convert`, training, probes, previews and pruning plots.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

# Larger images are refused (a few kB of PNG can claim 24000 x 24000 pixels and take gigabytes to decode).
MAX_IMAGE_PIXELS = 64_000_000
# Transparent pixels are composited on mid-grey: neutral for normalised inputs, and the same in every reader.
ALPHA_BACKGROUND = (128, 128, 128)
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS  # Pillow's own bomb check (it raises at twice this) agrees with ours

ALPHA_MODES = {"RGBA", "LA", "PA", "La", "RGBa"}
HIGH_BIT_MODES = {"I", "F", "I;16", "I;16B", "I;16L", "I;16N", "I;16S", "I;32", "I;32B", "I;32S"}


class ImageDecodeError(ValueError):
    """Image bytes could not be decoded; the message names the file or record."""


class ImageTooLargeError(ImageDecodeError):
    """An image claims more than MAX_IMAGE_PIXELS pixels; it is refused before its pixels are decoded."""


def open_image(data: bytes, where: str) -> Image.Image:
    """Open lazily (header only) and refuse images over MAX_IMAGE_PIXELS before any pixel is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused just below, with a reason
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{where}: {exc}") from exc
    except Exception as exc:  # UnidentifiedImageError, OSError, SyntaxError... on bytes that are no image
        raise ImageDecodeError(f"{where}: cannot open image: {type(exc).__name__}: {exc}") from exc
    width, height = img.size
    if width * height > MAX_IMAGE_PIXELS:
        img.close()
        raise ImageTooLargeError(f"{where}: image is {width}x{height} = {width * height / 1e6:.0f} MP, more than "
                                 f"the {MAX_IMAGE_PIXELS / 1e6:.0f} MP limit (MAX_IMAGE_PIXELS)")
    return img


def _declared_bits(img: Image.Image) -> int | None:
    """Bits per sample the file declares: 16 for Pillow's I;16 modes and PNG's I, TIFF's BitsPerSample tag."""
    if img.mode.startswith("I;16") or (img.mode == "I" and img.format == "PNG"):
        return 16
    tags = getattr(img, "tag_v2", None)
    bits = tags.get(258) if tags is not None else None
    if isinstance(bits, tuple):
        bits = bits[0] if bits else None
    return int(bits) if isinstance(bits, int) and 1 <= bits <= 32 else None


def full_scale(values: np.ndarray, mode: str, bits: int | None) -> float:
    """The value that maps to 255: the declared bit range; else, for integers, 16 bits when the values fit and
    int32's positive range when not; for floats, 1.0 when values lie in [0, 1], else 8, 16 or 32 bits."""
    top = float(values.max()) if values.size else 0.0
    if bits is not None and mode != "F":
        return float(2 ** min(bits, 31) - 1)
    if mode != "F":
        return 65535.0 if top <= 65535 else float(2 ** 31 - 1)
    for scale in (1.0, 255.0, 65535.0):
        if top <= scale:
            return scale
    return float(2 ** 31 - 1)


def high_bit_to_grey(img: Image.Image) -> Image.Image:
    """A 16/32-bit integer or float single-channel image → 8-bit L, scaled by its bit range (16-bit: / 257)."""
    values = np.nan_to_num(np.asarray(img).astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    scale = full_scale(values, img.mode, _declared_bits(img))
    grey = np.rint(np.clip(values, 0.0, scale) * (255.0 / scale)).astype(np.uint8)
    transparent = img.info.get("transparency")
    if isinstance(transparent, int):  # a 16-bit grey PNG's tRNS: one value that stands for "transparent"
        grey[np.asarray(img) == transparent] = round(sum(ALPHA_BACKGROUND) / 3)
    return Image.fromarray(grey, mode="L")


def flatten_alpha(img: Image.Image) -> Image.Image:
    """Alpha, premultiplied alpha or a palette/colour-key transparency → RGB on ALPHA_BACKGROUND."""
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (*ALPHA_BACKGROUND, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def to_8bit(img: Image.Image, mode: str) -> Image.Image:
    """Any Pillow mode → 8-bit `mode` ("L" or "RGB"), scaling high-bit modes and compositing transparency."""
    if img.mode in HIGH_BIT_MODES:
        img = high_bit_to_grey(img)
    elif img.mode in ALPHA_MODES or "transparency" in img.info:
        img = flatten_alpha(img)
    return img if img.mode == mode else img.convert(mode)


def _center_square(width: int, height: int) -> tuple[int, int, int, int]:
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def decode_image(data: bytes, mode: str, where: str, size: int | None = None, draft: bool = False,
                 square: str = "squash") -> np.ndarray:
    """Encoded bytes → uint8 [H, W, C] in `mode` ("L": C=1, "RGB": C=3), resized to size x size when given.

    `square` says how a non-square image becomes size x size: "crop" cuts the central square from the stored
    image and resizes that (the aspect ratio kept); "squash" resizes the whole image. With `draft`, a JPEG much
    larger than `size` is decoded at 1/2, 1/4 or 1/8 scale in the DCT domain (`Image.draft`), never below what
    the resize needs, which skips most of the decode work; other formats ignore it.
    Every failure is an ImageDecodeError naming `where` (ImageTooLargeError for images over MAX_IMAGE_PIXELS).
    """
    img = open_image(data, where)
    try:
        with img:
            if size is not None and draft and img.format == "JPEG":
                width, height = img.size
                short = min(width, height) if square == "crop" else None
                # The smallest scale whose result still covers the region the resize reads at `size` pixels.
                need = ((-(-size * width // short), -(-size * height // short)) if short else (size, size))
                img.draft(img.mode, need)
            out = to_8bit(img, mode)
            if size is not None and out.size != (size, size):
                box = _center_square(*out.size) if square == "crop" else None
                out = out.resize((size, size), Image.Resampling.BILINEAR, box=box)
            pixels = np.asarray(out)
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ValueError...) on corrupt data
        raise ImageDecodeError(f"{where}: cannot decode image: {type(exc).__name__}: {exc}") from exc
    return pixels.reshape(pixels.shape[0], pixels.shape[1], -1)
