"""Classification metrics on a held-out split."""

from __future__ import annotations

import keras
import numpy as np

from cnnzoo.data.datasets import make_dataset


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray,
                           names: list[str]) -> tuple[dict, np.ndarray]:
    """Accuracy and per-class precision/recall (0 where a class is never predicted/present)."""
    cm = confusion_matrix(y_true, y_pred, len(names))
    tp = np.diag(cm).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.nan_to_num(tp / cm.sum(axis=0))
        recall = np.nan_to_num(tp / cm.sum(axis=1))
    metrics = {
        "accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "per_class": {n: {"precision": float(p), "recall": float(r)}
                      for n, p, r in zip(names, precision, recall, strict=True)},
    }
    return metrics, cm


def predict_logits(model: keras.Model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    images = make_dataset(x, np.zeros(len(x), np.int32), batch_size=batch_size).map(lambda a, _: a)
    return model.predict(images, verbose=0)


def predict_classes(model: keras.Model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return np.argmax(predict_logits(model, x, batch_size), axis=-1)


def count_params(model: keras.Model) -> dict[str, int]:
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return {"params": int(model.count_params()), "trainable_params": trainable}
