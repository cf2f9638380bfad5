"""A corruption suite generated locally and deterministically, in the spirit of MNIST-C /
ImageNet-C: eleven corruptions at three severities, applied to float images in [0, 1] (N, H, W, C).

Every corruption is a pure function of the images, its severity and a seed: the same call gives
the same bytes, on any machine, so models are compared on identical images and a rerun is
cached. Random parts (noise, which way an image is shifted or sheared) draw from a generator
seeded by (seed, corruption, severity).
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable

import numpy as np
from PIL import Image
from scipy import ndimage

SEVERITIES = (1, 2, 3)


def _rng(seed: int, name: str, severity: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode()), severity])


def _per_image(x: np.ndarray, fn: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    return np.stack([fn(img, i) for i, img in enumerate(x)])


def noise(x, s, rng):
    return x + rng.normal(0, (0.04, 0.08, 0.16)[s - 1], x.shape)


def blur(x, s, rng):
    return ndimage.gaussian_filter(x, sigma=(0, *(2 * [(0.5, 1.0, 1.5)[s - 1]]), 0))


def contrast(x, s, rng):
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return (x - mean) * (0.6, 0.4, 0.2)[s - 1] + mean


def brightness(x, s, rng):
    return x + (0.15, 0.3, 0.45)[s - 1]


def _affine(x: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """Each image through its 2x2 `matrices[i]` about the centre (bilinear, zeros outside)."""
    h, w = x.shape[1:3]
    centre = np.array([(h - 1) / 2, (w - 1) / 2])

    def one(img, i):
        m = matrices[i]
        offset = centre - m @ centre
        return np.stack([ndimage.affine_transform(img[..., c], m, offset=offset, order=1,
                                                  mode="constant", cval=0.0)
                         for c in range(img.shape[-1])], axis=-1)
    return _per_image(x, one)


def rotation(x, s, rng):
    angles = np.deg2rad((10, 20, 30)[s - 1]) * rng.choice([-1, 1], len(x))
    c, n = np.cos(angles), np.sin(angles)
    return _affine(x, np.stack([np.stack([c, -n], -1), np.stack([n, c], -1)], 1))


def shear(x, s, rng):
    k = (0.15, 0.3, 0.45)[s - 1] * rng.choice([-1, 1], len(x))
    one, zero = np.ones(len(x)), np.zeros(len(x))
    return _affine(x, np.stack([np.stack([one, zero], -1), np.stack([k, one], -1)], 1))


def zoom(x, s, rng):
    f = 1 / (1.15, 1.3, 1.5)[s - 1]  # output pixel -> input pixel: zoom in
    return _affine(x, np.tile(np.eye(2) * f, (len(x), 1, 1)))


def translation(x, s, rng):
    shift = (2, 4, 6)[s - 1]
    moves = rng.choice([-shift, shift], size=(len(x), 2))
    return _per_image(x, lambda img, i: ndimage.shift(img, (*moves[i], 0), order=0,
                                                        mode="constant", cval=0.0))


def jpeg(x, s, rng):
    quality = (30, 15, 7)[s - 1]

    def one(img, _):
        u8 = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
        pil = Image.fromarray(u8[..., 0] if u8.shape[-1] == 1 else u8)
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=quality)
        out = np.asarray(Image.open(buf), np.float32) / 255
        return out[..., None] if out.ndim == 2 else out
    return _per_image(x, one)


def pixelate(x, s, rng):
    h, w = x.shape[1:3]
    f = (0.6, 0.45, 0.3)[s - 1]
    small = (max(1, round(w * f)), max(1, round(h * f)))

    def one(img, _):
        chans = [Image.fromarray(img[..., c].astype(np.float32))  # mode "F"
                 .resize(small, Image.BOX).resize((w, h), Image.NEAREST)
                 for c in range(img.shape[-1])]
        return np.stack([np.asarray(c) for c in chans], axis=-1)
    return _per_image(x, one)


def inversion(x, s, rng):
    a = (0.33, 0.67, 1.0)[s - 1]  # blend towards the negative; 1 = fully inverted
    return (1 - a) * x + a * (1 - x)


CORRUPTIONS: dict[str, Callable] = {f.__name__: f for f in (
    noise, blur, contrast, brightness, rotation, shear, translation, zoom, jpeg, pixelate,
    inversion)}


def corrupt(x: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """`x` (float, [0, 1], (N, H, W, C)) under corruption `name` at `severity` (1-3), clipped
    to [0, 1], float32."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; known: {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity}: expected one of {SEVERITIES}")
    x = np.asarray(x, np.float32)
    out = CORRUPTIONS[name](x, severity, _rng(seed, name, severity))
    return np.clip(out, 0, 1).astype(np.float32)
