"""`cnnzoo predict`: an exported model (.tflite or .keras) on image files, pre-processed as the
training images were (model.json, written by the export stage, says how).

Any PNG/JPEG (any size, colour or grey) becomes the training input: converted to grey (ITU-R
BT.601 luma, as the dataset's own conversion) or RGB, resized to the source images' size, then
zero-padded (`fit: pad`) or resized (`fit: resize`) to the model's input, scaled to [0, 1]
(cnnzoo/data/serving_input.py, the same code as the MLflow model's). An image whose background is the
opposite of the training images' (model.json's `background`) gets a warning; `invert` flips it.
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
    warning: str | None = None


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


# model.json's `background`: the training images' border brightness, in [0, 1].
DARK, LIGHT = 0.35, 0.65


def load_image(path: str | Path, card: dict, max_pixels: int = MAX_PIXELS,
               invert: bool = False) -> tuple[np.ndarray, str | None]:
    """One image file as the model's float32 (H, W, C) input in [0, 1], and a warning when its
    background is the opposite of the training images'."""
    from cnnzoo.data.images import ImageError, read_image
    from cnnzoo.data.serving_input import as_batch, border_brightness, to_model_input

    channels = card["input"]["shape"][-1]
    try:
        arr = np.asarray(read_image(path, channels, max_pixels), dtype=np.uint8)
    except ImageError as err:
        raise PredictError(str(err)) from None
    if invert:
        arr = 255 - arr
    warning = None
    trained = card["input"].get("background")
    if trained is not None and not invert:
        own = float(border_brightness(as_batch(arr, channels))[0])
        if (trained < DARK and own > LIGHT) or (trained > LIGHT and own < DARK):
            warning = (f"{path}: a {'light' if own > LIGHT else 'dark'} background (border "
                       f"brightness {own:.2f}), but the model learned on "
                       f"{'dark' if trained < DARK else 'light'} ones ({trained:.2f}): its "
                       "prediction is unreliable; --invert flips the image's brightness")
    return to_model_input(arr, card, keep_model_size=False)[0], warning


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
        from cnnzoo.deploy.convert import LiteModel

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


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    e = np.exp(z - z.max())
    return e / e.sum()


def predict(model: str | Path, images: Sequence[str | Path], *, card: str | Path | None = None,
            top_k: int = 3, max_pixels: int = MAX_PIXELS, invert: bool = False) -> list[Prediction]:
    model = Path(model)
    check_model_file(model)
    info = load_card(find_card(model, card))
    names = info["classes"]
    if not 1 <= top_k <= len(names):
        raise PredictError(f"-k {top_k}: must be between 1 and {len(names)} (the model's "
                           "classes)")
    # Every image checked before the model loads.
    inputs = [load_image(p, info, max_pixels, invert) for p in images]
    logits_of = load_model(model)
    out = []
    for path, (x, warning) in zip(images, inputs, strict=True):
        try:
            logits = np.asarray(logits_of(x), np.float32)
        except ValueError as err:  # e.g. the card of another model: the input shape differs
            raise PredictError(f"{model}: does not take model.json's input {x.shape} "
                               f"({str(err).splitlines()[0]})") from None
        if logits.shape != (len(names),):
            raise PredictError(f"{model}: gives {logits.shape[-1]} outputs, but "
                               f"model.json lists {len(names)} classes")
        # model.json's temperature (fitted on validation): calibrated probabilities; a card
        # written before there was one has none.
        probs = softmax(logits, info.get("temperature", 1.0))
        best = np.argsort(-probs)[:top_k]
        out.append(Prediction(str(path), [(names[i], float(probs[i])) for i in best], warning))
    return out
