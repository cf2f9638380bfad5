"""params.yaml -> frozen, validated config: `load` validates it once, and every reader (the
stages, `cnnzoo check`, the runner's summary) goes through it.

Every section forbids unknown keys, so a typo fails at load time with the key's dotted name
instead of being silently ignored. The sections live in `sections` (the classification
pipeline's) and `tasks` (segmentation, detection, verification, the pipelines switch); `Params`
adds the checks that span sections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from cnnzoo.config.sections import (
    MAX_PIXELS,
    AugmentConfig,
    BaseConfig,
    DataConfig,
    ExportConfig,
    PretrainConfig,
    RobustnessConfig,
    SizesConfig,
    TrainConfig,
    TransferConfig,
    VisualizeConfig,
    _Section,
)
from cnnzoo.config.tasks import (
    DetectConfig,
    PipelinesConfig,
    SegmentConfig,
    SegmentDataConfig,
    VerifyConfig,
)

__all__ = ["MAX_PIXELS", "AugmentConfig", "BaseConfig", "ConfigError", "DataConfig",
           "DetectConfig", "ExportConfig", "Params", "PipelinesConfig", "PretrainConfig",
           "RobustnessConfig", "SegmentConfig", "SegmentDataConfig", "SizesConfig",
           "TrainConfig", "TransferConfig", "VerifyConfig", "VisualizeConfig", "load", "parse"]

DEFAULT_PARAMS = "params.yaml"


class ConfigError(ValueError):
    """params.yaml is malformed; the message names the offending key."""


# What to set for a class folder (no test split to build scenes from, no boxes).
_FOLDER_PIPELINES = ("-S 'pipelines.segment=[]' -S 'pipelines.detect=[]'")


class Params(_Section):
    base: BaseConfig
    pipelines: PipelinesConfig = PipelinesConfig()
    data: DataConfig = DataConfig()
    augment: AugmentConfig = AugmentConfig()
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    pretrain: PretrainConfig
    transfer: TransferConfig
    finetune: TrainConfig
    export: ExportConfig = ExportConfig()
    sizes: SizesConfig = SizesConfig()
    robustness: RobustnessConfig = RobustnessConfig()
    segment: SegmentConfig = SegmentConfig()
    detect: DetectConfig = DetectConfig()
    verify: VerifyConfig = VerifyConfig()
    visualize: VisualizeConfig = VisualizeConfig()

    @model_validator(mode="after")
    def _model_hparams(self) -> Params:
        from cnnzoo.config.catalogue import list_models, model_hparams

        if self.augment.effect_arch not in list_models():
            raise ValueError(f"augment.effect_arch: unknown architecture "
                             f"{self.augment.effect_arch!r}; known: {', '.join(list_models())}")
        for section in ("pretrain", "transfer", "finetune"):
            unknown = sorted(set(getattr(self, section).per_arch) - set(list_models()))
            if unknown:
                raise ValueError(f"{section}.per_arch: unknown architecture(s) {unknown}; "
                                 f"known: {', '.join(list_models())}")
        self._pipelines_fit_data()
        if (self.pipelines.verify and self.verify.init == "pretrain"
                and self.verify.backbone not in self.base.archs):
            raise ValueError(f"verify.init 'pretrain' starts from pretrain@{self.verify.backbone}, "
                             f"but {self.verify.backbone!r} is not in base.archs; add it or set "
                             "verify.init: scratch")
        if self.pipelines.segment and self.segment.encoder not in self.base.archs:
            raise ValueError(f"segment.encoder {self.segment.encoder!r} is not in base.archs: the "
                             f"segment stage reads pretrain@{self.segment.encoder} (even with "
                             "segment.init scratch or plain); add it or pick one of "
                             f"{', '.join(self.base.archs)}")
        if (self.pipelines.detect and self.detect.init == "pretrain"
                and self.detect.backbone not in self.base.archs):
            raise ValueError(f"detect.init 'pretrain' starts from pretrain@{self.detect.backbone}, "
                             f"but {self.detect.backbone!r} is not in base.archs; add it or set "
                             "detect.init: scratch")
        for arch, hp in self.models.items():
            allowed = model_hparams(arch)  # raises ValueError for an unknown name
            bad = sorted(set(hp) - allowed)
            if bad:
                raise ValueError(f"models.{arch}: unknown setting(s) {bad}; allowed: {sorted(allowed)}")
        return self

    def _pipelines_fit_data(self) -> None:
        """Every pipeline listed can be built from the data: caught here, before any training,
        naming the key to change (a class folder has no scenes to segment or detect in)."""
        chosen = self.pipelines
        for name, arch in (("segment", self.segment.arch), ("detect", self.detect.arch),
                           ("verify", "siamese")):
            listed = getattr(chosen, name)
            if listed and listed != [arch]:
                raise ValueError(f"pipelines.{name}: {listed} is not [] or [{arch}] (the model "
                                 f"is set by {name}.arch)" if name != "verify" else
                                 f"pipelines.verify: {listed} is not [] or [siamese]")
        scenes = self.segment.data.source == "scenes"
        if scenes and self.data.source == "folder" and (chosen.segment or chosen.detect):
            raise ValueError("data.source 'folder' is a class folder: it has no test split to "
                             "build segmentation scenes from. Turn the scene pipelines off: "
                             f"pipelines.segment: [] and pipelines.detect: [] ({_FOLDER_PIPELINES}"
                             "), or give segmentation its own images and masks "
                             "(segment.data.source: folder, segment.data.path, "
                             "segment.data.classes)")
        if chosen.detect and not chosen.segment:
            raise ValueError("pipelines.detect needs the scenes that the segmentation pipeline "
                             "builds: list pipelines.segment: [unet] too, or set "
                             "pipelines.detect: []")
        if chosen.detect and not scenes:
            raise ValueError(f"pipelines.detect trains on generated scenes' item boxes; "
                             f"segment.data.source {self.segment.data.source!r} has no boxes: "
                             "set pipelines.detect: [] or segment.data.source: scenes")

    def model_kwargs(self, arch: str) -> dict[str, Any]:
        return dict(self.models.get(arch, {}))


def _format(err: ValidationError, source: str) -> str:
    """One line, every problem named by its dotted key (`cnnzoo check`, `cnnzoo run`, stages)."""
    problems = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        msg = "unknown key (not allowed here)" if e["type"] == "extra_forbidden" else e["msg"]
        msg = " ".join(msg.removeprefix("Value error, ").split())
        # Checks across sections name their keys themselves.
        problems.append(f"{key}: {msg}" if key else msg)
    return f"{source} is invalid: " + "; ".join(problems)


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
        raise ConfigError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from None
    return parse(raw, str(path))
