"""A class folder of real images to try the own-data path on: scikit-learn's copy of the UCI
handwritten digits (1,797 scans of 43 writers, 8x8 pixels of 0..16, ink high), shipped inside
the scikit-learn package (an MLflow dependency), so it needs no download.

Written as one sub-folder of grey PNGs per digit, each pixel repeated `scale` times (24x24 by
default), ink bright on a dark background like Fashion-MNIST's items.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cnnzoo.files import atomic_path

log = logging.getLogger(__name__)


def write_digits(out: str | Path, scale: int = 3) -> int:
    """The digits as `out/<digit>/<index>.png`; returns how many images were written. `out` is
    replaced as a whole (written beside it, then renamed)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    images = images.repeat(scale, axis=1).repeat(scale, axis=2)
    with atomic_path(out) as tmp:
        for digit in np.unique(digits.target):
            (tmp / str(digit)).mkdir(parents=True)
        for i, (img, digit) in enumerate(zip(images, digits.target, strict=True)):
            Image.fromarray(img, "L").save(tmp / str(digit) / f"{i:04d}.png")
    log.info("wrote %d handwritten digits (%dx%d PNG) in 10 class folders to %s", len(images),
             *images.shape[1:3], out)
    return len(images)
