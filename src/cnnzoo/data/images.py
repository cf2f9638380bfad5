"""One image file as 8-bit grey or RGB pixels, for training (class folders, scene folders) and
for `cnnzoo predict` alike, so both read a file the same way.

- A pixel limit (`data.max_pixels`, `predict --max-pixels`) is checked from the header, before
  anything is decoded: a 20000×20000 PNG is a one-line error, not a decompression bomb.
- 16-bit and 32-bit integer images are scaled to 8 bits over their type's range, float images
  over [0, 1] (or their own range when they leave it); PIL's own conversion clips them instead
  (a 16-bit PNG became two or three grey levels).
- CMYK, palette, alpha and 1-bit images go through PIL's conversion (alpha is dropped).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnzoo.config import MAX_PIXELS


class ImageError(ValueError):
    """A file that cannot be used as an image; the message names the file and says why."""


def to_8bit(img):
    """`img` with 16/32-bit integer or float pixels rescaled to 8-bit grey ("L"); other modes
    as they are."""
    from PIL import Image

    if img.mode.startswith("I;16") or img.mode == "I":
        # "I" holds 16-bit PNGs on some PIL versions: a 16-bit range unless values exceed it.
        arr = np.asarray(img).astype(np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) <= 65535 else 2**32 - 1
        return Image.fromarray(np.round(np.clip(arr, 0, top) * (255.0 / top)).astype(np.uint8))
    if img.mode == "F":
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64))
        low, high = min(arr.min(initial=0.0), 0.0), max(arr.max(initial=1.0), 1.0)
        return Image.fromarray(np.round((arr - low) * (255.0 / (high - low))).astype(np.uint8))
    return img


def read_image(path: str | Path, channels: int, max_pixels: int = MAX_PIXELS):
    """The file at `path` as a PIL image in mode "L" (channels 1) or "RGB" (channels 3).
    Raises ImageError naming the file and the problem."""
    from PIL import Image

    # Our limit replaces PIL's fixed one (a warning, then an error at twice its 89 MP), so that
    # it is configurable and reported as one line.
    Image.MAX_IMAGE_PIXELS = None
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image file")
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    try:
        with Image.open(path) as img:
            width, height = img.size
            if max_pixels and width * height > max_pixels:
                raise ImageError(f"{path}: {width}x{height} = {width * height:,} pixels, over the "
                                 f"limit of {max_pixels:,} (raise data.max_pixels, or "
                                 "--max-pixels for predict)")
            img.verify()  # catches truncated / corrupt files before decoding
        with Image.open(path) as img:
            img.load()
            return to_8bit(img).convert("L" if channels == 1 else "RGB")
    except ImageError:
        raise
    except Exception as err:  # noqa: BLE001 — PIL raises many types for bad files
        first = (str(err).splitlines() or [""])[0]
        raise ImageError(f"{path}: not a readable image ({type(err).__name__}: {first})") from None
