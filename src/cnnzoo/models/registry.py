"""The one model registry (timm-style).

A family module registers its variants as data: `register_model("name", **settings)(builder)`
or `@register_model()` on a builder. Builders are keyword-only and return an uncompiled
`keras.Model` named after the registry key that outputs logits from a layer named `head`.
Classifiers (`task="classify"`, the default) also expose the backbone's flat feature vector from
a layer named `features`; a segmentation model (`task="segment"`) outputs per-pixel logits and
a detector (`task="detect"`) its S×S grid of raw box and class outputs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras

FEATURES = "features"  # name of the layer whose output is the backbone's feature vector
HEAD = "head"  # name of the classification layer (logits)
_BUILDER_ARGS = {"name", "input_shape", "num_classes"}
TASKS = ("classify", "segment", "detect")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    builder: Callable[..., keras.Model]
    defaults: dict[str, Any] = field(default_factory=dict)
    task: str = "classify"


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str | None = None, *, family: str | None = None,
                   task: str = "classify", **defaults: Any):
    """Register `builder` under `name` (default: the function name) with default settings."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")

    def decorator(builder: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        key = name or builder.__name__
        if key in _REGISTRY:
            raise ValueError(f"model {key!r} is registered twice")
        fam = family or builder.__module__.rsplit(".", 1)[-1]
        _REGISTRY[key] = ModelEntry(key, fam, builder, dict(defaults), task)
        return builder

    return decorator


def register_variants(builder: Callable[..., keras.Model], variants: dict[str, dict[str, Any]],
                      family: str | Callable[[str], str]) -> None:
    """Register `builder` once per named variant of a family (its depths, widths, stem), with
    the variant's settings as defaults; `family` may depend on the variant's name."""
    for key, settings in variants.items():
        register_model(key, family=family if isinstance(family, str) else family(key),
                       **settings)(builder)


def list_models(task: str | None = "classify") -> list[str]:
    """Registered names for `task` (None: every task). The classification pipeline, its
    architecture lists and the size table take classifiers only."""
    return sorted(k for k, e in _REGISTRY.items() if task is None or e.task == task)


def get_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(list_models(None))}") from None


def model_hparams(name: str) -> set[str]:
    """The settings `create_model(name, ...)` accepts besides input_shape and num_classes."""
    params = inspect.signature(get_entry(name).builder).parameters
    return {p for p, v in params.items() if v.kind is v.KEYWORD_ONLY} - _BUILDER_ARGS


def create_model(name: str, *, input_shape: tuple[int, ...], num_classes: int,
                 **hp: Any) -> keras.Model:
    """Build registered model `name`; `hp` overrides the variant's defaults."""
    entry = get_entry(name)
    unknown = set(hp) - model_hparams(name)
    if unknown:
        raise ValueError(f"{name}: unknown setting(s) {sorted(unknown)}; "
                         f"allowed: {sorted(model_hparams(name))}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    kwargs = {**entry.defaults, **hp}
    return entry.builder(name=name, input_shape=tuple(input_shape), num_classes=num_classes,
                         **kwargs)
