"""`cnnzoo predict`: an exported model (.tflite or .keras) on image files, pre-processed as the
training images were (model.json, written by the export stage, says how).

Any PNG/JPEG (any size, colour or grey) becomes the training input: converted to grey (ITU-R
BT.601 luma, as the dataset's own conversion) or RGB, resized to the source images' size, then
zero-padded (`fit: pad`) or resized (`fit: resize`) to the model's input, scaled to [0, 1].
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnzoo.config import MAX_PIXELS


class PredictError(Exception):
    """Bad input (missing file, not an image, not a model): one line for the user."""


@dataclass(frozen=True)
class Prediction:
    image: str
    top: list[tuple[str, float]]  # (label, probability), most likely first


def find_card(model: Path, card: str | Path | None = None) -> Path:
    """model.json: `card`, else beside the model, else exports/<model stem>/ (where the export
    stage puts the card of models/finetune/<arch>.keras)."""
    candidates = [Path(card)] if card else [model.parent / "model.json",
                                             Path("exports") / model.stem / "model.json"]
    for path in candidates:
        if path.is_file():
            return path
    raise PredictError(f"no model.json for {model} (looked in {', '.join(map(str, candidates))}); "
                       "pass --card exports/<arch>/model.json")


def load_card(path: Path) -> dict:
    try:
        card = json.loads(path.read_text())
        card["input"]["shape"], card["classes"]  # noqa: B018 — the keys predict needs
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise PredictError(f"{path}: not a cnnzoo model.json ({type(err).__name__}: {err})") from None
    return card


def load_image(path: str | Path, card: dict, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """One image file as the model's float32 (H, W, C) input in [0, 1]."""
    from PIL import Image

    from cnnzoo.data.images import ImageError, read_image

    inp = card["input"]
    height, width, channels = inp["shape"]
    try:
        img = read_image(path, channels, max_pixels)
    except ImageError as err:
        raise PredictError(str(err)) from None
    h, w = inp.get("source_size", [height, width]) if inp.get("fit") == "pad" else (height, width)
    h, w = min(h, height), min(w, width)
    arr = np.asarray(img.resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0
    arr = arr.reshape(h, w, channels)
    top, left = (height - h) // 2, (width - w) // 2  # as data.prepare.pad_to
    out = np.zeros((height, width, channels), np.float32)
    out[top:top + h, left:left + w] = arr
    return out


def check_model_file(path: Path) -> None:
    """Say what is wrong with `path` as a model file before anything tries to load it."""
    if path.is_dir():
        raise PredictError(f"{path}: is a folder, not a model file (.tflite or .keras)")
    if not path.is_file():
        raise PredictError(f"{path}: no such file")
    if path.suffix not in (".tflite", ".keras"):
        raise PredictError(f"{path}: expected a .tflite or .keras model file")
    with path.open("rb") as f:
        head = f.read(8)
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise PredictError(f"{path}: not a Keras model file (zip expected)")
    if path.suffix == ".tflite" and head[4:8] != b"TFL3":
        raise PredictError(f"{path}: not a TFLite model (no TFL3 flatbuffer identifier)")


def load_model(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """A function from one (H, W, C) float image to its logits."""
    check_model_file(path)
    if path.suffix == ".tflite":
        from cnnzoo.export import LiteModel

        try:
            return LiteModel(path.read_bytes()).logits
        except (ValueError, RuntimeError) as err:
            raise PredictError(f"{path}: not a TFLite model ({str(err).splitlines()[0]})") from None
    if path.suffix == ".keras":
        import keras

        import cnnzoo.models  # noqa: F401 — registers the custom layers

        try:
            net = keras.models.load_model(path)
        except Exception as err:  # noqa: BLE001 — Keras raises many types for a bad archive
            raise PredictError(f"{path}: not a Keras model file ({type(err).__name__}: "
                               f"{str(err).splitlines()[0] if str(err) else ''})") from None
        return lambda img: net.predict(img[None], verbose=0)[0]
    raise AssertionError(path)  # check_model_file allows only the two suffixes above


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max())
    return e / e.sum()


def predict(model: str | Path, images: Sequence[str | Path], *, card: str | Path | None = None,
            top_k: int = 3, max_pixels: int = MAX_PIXELS) -> list[Prediction]:
    model = Path(model)
    check_model_file(model)
    info = load_card(find_card(model, card))
    names = info["classes"]
    if not 1 <= top_k <= len(names):
        raise PredictError(f"-k {top_k}: must be between 1 and {len(names)} (the model's "
                           "classes)")
    # Every image checked before the model loads.
    inputs = [load_image(p, info, max_pixels) for p in images]
    logits_of = load_model(model)
    out = []
    for path, x in zip(images, inputs, strict=True):
        try:
            logits = np.asarray(logits_of(x), np.float32)
        except ValueError as err:  # e.g. the card of another model: the input shape differs
            raise PredictError(f"{model}: does not take model.json's input {x.shape} "
                               f"({str(err).splitlines()[0]})") from None
        if logits.shape != (len(names),):
            raise PredictError(f"{model}: gives {logits.shape[-1]} outputs, but "
                               f"model.json lists {len(names)} classes")
        probs = softmax(logits)
        best = np.argsort(-probs)[:top_k]
        out.append(Prediction(str(path), [(names[i], float(probs[i])) for i in best]))
    return out
