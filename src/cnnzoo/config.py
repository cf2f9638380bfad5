"""params.yaml -> frozen, validated config. Validated once, here; the library never re-reads it.

Every section forbids unknown keys, so a typo fails at load time with the key's dotted name
instead of being silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_PARAMS = "params.yaml"


class ConfigError(ValueError):
    """params.yaml is malformed; the message names the offending key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BaseConfig(_Section):
    seed: int = 42
    archs: list[str] = Field(min_length=1)
    experiment: str = "cnnzoo"
    # Runtime: `auto` picks MirroredStrategy on >1 GPU (MultiWorker when TF_CONFIG is set) and
    # mixed precision on GPU; XLA stays off by default because it is ~2x slower on small CPUs.
    distribute: Literal["auto", "default", "mirrored", "multi_worker"] = "auto"
    mixed_precision: Literal["auto", "on", "off"] = "auto"
    jit_compile: bool = False
    deterministic: bool = True

    @field_validator("archs")
    @classmethod
    def _known_archs(cls, archs: list[str]) -> list[str]:
        from cnnzoo.models import list_models

        known = list_models()
        unknown = [a for a in archs if a not in known]
        if unknown:
            raise ValueError(f"unknown architecture(s) {unknown}; known: {', '.join(known)}")
        if len(set(archs)) != len(archs):
            raise ValueError(f"duplicate architectures in {archs}")
        return archs


class DataConfig(_Section):
    source: Literal["fashion_mnist"] = "fashion_mnist"
    image_size: int = Field(32, ge=28, le=256)
    task_a_classes: list[int] = Field(default=[0, 2, 4, 6, 8], min_length=2)
    task_b_classes: list[int] = Field(default=[1, 3, 5, 7, 9], min_length=2)
    val_fraction: float = Field(0.1, gt=0, lt=0.5)
    labels_per_class: int = Field(100, ge=1)
    val_per_class: int = Field(100, ge=1)
    # 0 = use everything; small values make quick smoke runs.
    max_train_a: int = Field(0, ge=0)
    max_test: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _disjoint_tasks(self) -> DataConfig:
        overlap = set(self.task_a_classes) & set(self.task_b_classes)
        if overlap:
            raise ValueError(f"task_a_classes and task_b_classes overlap on {sorted(overlap)}")
        return self


class AugmentConfig(_Section):
    """Factors follow Keras' preprocessing layers (rotation in fractions of a full turn)."""

    flip: Literal["none", "horizontal", "vertical", "horizontal_and_vertical"] = "horizontal"
    rotation: float = Field(0.05, ge=0, le=0.5)
    translation: float = Field(0.1, ge=0, le=0.5)
    zoom: float = Field(0.1, ge=0, lt=1)
    brightness: float = Field(0.1, ge=0, le=1)
    contrast: float = Field(0.1, ge=0, le=1)
    preview_samples: int = Field(16, ge=1, le=64)


class TrainConfig(_Section):
    epochs: int = Field(ge=1)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    augment: bool = True
    # Early stopping on val_loss; 0 turns it off.
    patience: int = Field(0, ge=0)
    # Batches of clean training images used to re-estimate BatchNorm statistics after training
    # (see train.recalibrate_batchnorm); 0 turns it off.
    bn_recalibration_batches: int = Field(30, ge=0)
    # finetune only: "all" or the number of top backbone layers made trainable again.
    unfreeze: Literal["all"] | int = "all"


class ExportConfig(_Section):
    representative_samples: int = Field(200, ge=1)
    # The int8 model may lose at most this much test accuracy against float32, else the stage fails.
    max_int8_drop: float = Field(0.05, ge=0, le=1)
    latency_runs: int = Field(50, ge=1)
    eval_limit: int = Field(0, ge=0)


class Params(_Section):
    base: BaseConfig
    data: DataConfig = DataConfig()
    augment: AugmentConfig = AugmentConfig()
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    pretrain: TrainConfig
    transfer: TrainConfig
    finetune: TrainConfig
    export: ExportConfig = ExportConfig()

    @model_validator(mode="after")
    def _model_hparams(self) -> Params:
        from cnnzoo.models import model_hparams

        for arch, hp in self.models.items():
            allowed = model_hparams(arch)  # raises ValueError for an unknown name
            bad = sorted(set(hp) - allowed)
            if bad:
                raise ValueError(f"models.{arch}: unknown setting(s) {bad}; allowed: {sorted(allowed)}")
        return self

    def model_kwargs(self, arch: str) -> dict[str, Any]:
        return dict(self.models.get(arch, {}))


def _format(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<top level>"
        msg = "unknown key (not allowed here)" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  {key}: {msg}")
    return f"{source} is invalid:\n" + "\n".join(lines)


def parse(raw: dict[str, Any], source: str = "params") -> Params:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format(err, source)) from None


def load(path: str | Path = DEFAULT_PARAMS) -> Params:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} not found (run from the project root, or pass --params)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    return parse(raw, str(path))
