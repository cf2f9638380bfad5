"""The classification pipeline's sections of params.yaml: base, data, augment, the training
stages, export, visualize, sizes. Each forbids unknown keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Images over this many pixels are refused before decoding (decompression bombs); camera photos
# (up to ~100 MP) pass. `data.max_pixels` and `predict --max-pixels` change it.
MAX_PIXELS = 100_000_000


def project_path(value: str | None) -> str | None:
    """A params value that becomes a path must stay inside the project (the folder DVC runs the
    stages in): relative, without `..`, or absolute under the project root. A params file then
    means the same in every clone, and cannot make a stage read or write elsewhere. A folder
    kept outside is linked in, e.g. `ln -s /home/me/leaves data/leaves` and `path: data/leaves`."""
    if value is None:
        return None
    path = Path(value)
    hint = ("; keep it inside the project, e.g. link it in: ln -s <folder> data/<name> and "
            "set the path to data/<name>")
    if ".." in path.parts:
        raise ValueError(f"{value!r} leaves its folder with '..'{hint}")
    if path.is_absolute() and not path.is_relative_to(Path.cwd().resolve()):
        raise ValueError(f"{value!r} is outside the project ({Path.cwd().resolve()}){hint}")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BaseConfig(_Section):
    seed: int = 42
    archs: list[str] = Field(min_length=1)
    experiment: str = "cnnzoo"
    # Runtime: `auto` picks MirroredStrategy on >1 GPU (MultiWorker when TF_CONFIG is set) and
    # mixed precision on GPU; XLA (`auto`) only on GPU: it is ~2x slower on small CPUs.
    distribute: Literal["auto", "default", "mirrored", "multi_worker"] = "auto"
    mixed_precision: Literal["auto", "on", "off"] = "auto"
    jit_compile: bool | Literal["auto"] = "auto"
    deterministic: bool = True

    @field_validator("archs")
    @classmethod
    def _known_archs(cls, archs: list[str]) -> list[str]:
        from cnnzoo.config.catalogue import list_models

        known = list_models()
        unknown = [a for a in archs if a not in known]
        if unknown:
            raise ValueError(f"unknown architecture(s) {unknown}; known: {', '.join(known)}")
        if len(set(archs)) != len(archs):
            raise ValueError(f"duplicate architectures in {archs}")
        return archs


SOURCES = ("fashion_mnist", "mnist", "cifar10", "cifar100", "folder")
ClassSelector = Literal["even", "odd", "all"] | list[int]


class DataConfig(_Section):
    # fashion_mnist | mnist | cifar10 | cifar100 | folder (needs `path`) | tfds:<name>
    source: str = "fashion_mnist"
    path: str | None = None
    image_size: int = Field(32, ge=8, le=512)
    channels: Literal[1, 3] | None = None  # None: the source's own (1 for *MNIST, 3 otherwise)
    # How images of another size reach image_size: "pad" zero-pads smaller ones (LeNet-5's
    # 28 -> 32; larger folder images shrink first, aspect kept), "resize" rescales bilinearly.
    fit: Literal["pad", "resize"] = "pad"
    # Folder images over this many pixels are skipped (listed in skipped.txt) undecoded.
    max_pixels: int = Field(MAX_PIXELS, ge=1)
    # Classes of each task: a list of class indices, or even / odd / all class indices.
    # Task B's few-shot images are always distinct from task A's, so "all" may serve both.
    task_a_classes: ClassSelector = "even"
    task_b_classes: ClassSelector = "odd"
    test_fraction: float = Field(0.2, gt=0, lt=1)  # for sources without a test split (folder)
    val_fraction: float = Field(0.1, gt=0, lt=0.5)
    # Task B's labelled training images per class; 0 = every image of the pool below. Training
    # stages take the first labels_per_class x k images of the class-interleaved pool, so a label
    # sweep reruns only task B's stages (download does not depend on this key).
    labels_per_class: int = Field(100, ge=0)
    # Task B images set aside per class by `download` (0 = all that remain after validation).
    b_pool_per_class: int = Field(1000, ge=0)
    val_per_class: int = Field(100, ge=1)
    # 0 = use everything; small values make quick smoke runs.
    max_train_a: int = Field(0, ge=0)
    max_test: int = Field(0, ge=0)

    _path = field_validator("path")(project_path)

    @field_validator("source")
    @classmethod
    def _known_source(cls, source: str) -> str:
        if source not in SOURCES and not (source.startswith("tfds:") and len(source) > 5):
            raise ValueError(f"unknown source {source!r}; known: {', '.join(SOURCES)}, tfds:<name>")
        return source

    @model_validator(mode="after")
    def _consistent(self) -> DataConfig:
        if self.source == "folder" and not self.path:
            raise ValueError("data.source 'folder' needs data.path (one sub-folder per class)")
        if self.b_pool_per_class and self.labels_per_class > self.b_pool_per_class:
            raise ValueError(f"labels_per_class={self.labels_per_class} is more than "
                             f"b_pool_per_class={self.b_pool_per_class}; raise the pool "
                             "(0 = every image) or lower labels_per_class")
        a, b = self.task_a_classes, self.task_b_classes
        if isinstance(a, list) and isinstance(b, list) and set(a) & set(b):
            raise ValueError(f"task_a_classes and task_b_classes overlap on "
                             f"{sorted(set(a) & set(b))} (use 'all' to share every class)")
        return self


class AugmentConfig(_Section):
    """Factors follow Keras' preprocessing layers (rotation in fractions of a full turn); 0 turns
    an augmentation off."""

    flip: Literal["none", "horizontal", "vertical", "horizontal_and_vertical"] = "horizontal"
    rotation: float = Field(0.05, ge=0, le=0.5)
    translation: float = Field(0.1, ge=0, le=0.5)
    zoom: float = Field(0.1, ge=0, lt=1)
    crop_padding: int = Field(0, ge=0, le=16)  # pad-and-crop: pixels of zero padding
    brightness: float = Field(0.1, ge=0, le=1)
    contrast: float = Field(0.1, ge=0, le=1)
    color_jitter: float = Field(0.0, ge=0, le=0.5)  # saturation and hue (colour images only)
    erasing: float = Field(0.0, ge=0, le=1)  # probability of erasing a random rectangle
    rand_augment_ops: int = Field(0, ge=0, le=6)  # RandAugment's N (0 = off)
    rand_augment_magnitude: float = Field(0.3, ge=0, le=1)
    # Batch-level mixing during training (Beta(α, α)); when both are on, each batch uses one.
    mixup_alpha: float = Field(0.0, ge=0)
    cutmix_alpha: float = Field(0.0, ge=0)
    copies: int = Field(2, ge=0, le=100)  # augmented variants of each training set on disk
    preview_samples: int = Field(16, ge=1, le=64)
    # The report's augmentation column: this architecture trained on task B with and without it.
    effect_arch: str = "lenet5"
    effect_epochs: int = Field(15, ge=1)


class TrainConfig(_Section):
    epochs: int = Field(ge=0)
    batch_size: int = Field(64, ge=1)
    # Peak learning rate of Adam; the schedule warms up linearly over `warmup` (a fraction of all
    # steps) and then follows a cosine decay to zero ("constant" keeps it flat).
    learning_rate: float = Field(1e-3, gt=0)
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup: float = Field(0.1, ge=0, lt=1)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    # Training images used (0 = all); lets one family train on fewer images than another.
    images: int = Field(0, ge=0)
    # At least this many optimizer steps: few labelled images get more epochs (0 = epochs only).
    min_steps: int = Field(0, ge=0)
    augment: bool = True
    # Early stopping on val_loss; 0 turns it off.
    patience: int = Field(0, ge=0)
    # Batches of clean training images used to re-estimate BatchNorm statistics after training
    # (see train.recalibrate_batchnorm); 0 turns it off.
    bn_recalibration_batches: int = Field(30, ge=0)
    # Task B: re-estimate them on images of the whole training pool, labels unused, instead of
    # the few labelled ones (AdaBN, Li et al. 2016): 100 images give noisy statistics.
    bn_recalibration_pool: bool = False
    # Weight averaging: training ends on an exponential moving average of the weights with this
    # momentum (Adam's use_ema); 0 = off. It steadies short, noisy few-label runs.
    ema: float = Field(0.0, ge=0, lt=1)
    # Per-architecture overrides of the keys above, e.g. {lenet5: {epochs: 6}}: families differ
    # in how fast they learn and how many images per second they train on.
    per_arch: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _overrides(self) -> TrainConfig:
        allowed = set(type(self).model_fields) - {"per_arch", *_NOT_PER_ARCH}
        for arch, over in self.per_arch.items():
            bad = sorted(set(over) - allowed)
            if bad:
                raise ValueError(f"per_arch.{arch}: unknown key(s) {bad}; allowed: {sorted(allowed)}")
        return self

    def for_arch(self, arch: str) -> TrainConfig:
        """These settings with `per_arch[arch]` applied (validated like the section itself)."""
        over = self.per_arch.get(arch)
        if not over:
            return self
        return type(self).model_validate({**self.model_dump(), **over})


# Keys that stay the same for every architecture of a stage (they define the experiment).
_NOT_PER_ARCH = ("weights", "strategy", "top_blocks", "adapt_batchnorm")


class PretrainConfig(TrainConfig):
    # scratch: learn task A from random weights. imagenet: start the families that
    # keras.applications has from its ImageNet weights instead (no task-A training).
    weights: Literal["scratch", "imagenet"] = "scratch"
    # The ImageNet weights' input size: grey images are repeated to RGB and resized to it.
    imagenet_size: int = Field(224, ge=32, le=512)


class TransferConfig(TrainConfig):
    """The `transfer` stage trains a new head on the frozen backbone (a linear probe on features
    computed once); `strategy` then decides what `finetune` does with it."""

    strategy: Literal["linear_probe", "fine_tune_top", "fine_tune_all", "from_scratch"] = (
        "fine_tune_all")
    # fine_tune_top: how many of the backbone's top blocks (per family, by layer-name prefix)
    # are trained again.
    top_blocks: int = Field(2, ge=1)
    # Fine-tuned (unfrozen) BatchNorm layers learn task B's statistics; frozen parts always
    # stay in inference mode.
    adapt_batchnorm: bool = True


class ExportConfig(_Section):
    # Calibration images for the int8 variant, from task B's training split (never the test split).
    representative_samples: int = Field(200, ge=1)
    # Parity gate: every TFLite variant may lose at most this much test accuracy against the
    # Keras model, else the stage fails.
    max_drop: float = Field(0.01, ge=0, le=1)
    # false: a file past the gate is written anyway, its failure recorded in the metrics
    # (`gate_failures`) and logged; `make sweep` sets it to measure every label budget.
    enforce_gate: bool = True
    # int8 weight scales: per_channel (TFLite's default), per_tensor (smaller file), or auto:
    # per_tensor unless it loses more than max_drop on the validation split.
    int8_scales: Literal["auto", "per_channel", "per_tensor"] = "auto"
    # Calibration images run through the quantization debugger (per-layer int8 error).
    debug_samples: int = Field(32, ge=1)
    # An int8 model that fails the gate is retried with its worst layers kept in float.
    repair: bool = True
    # The classifiers also as ONNX, run by onnxruntime and gated like the TFLite variants.
    onnx: bool = True
    latency_runs: int = Field(100, ge=1)
    latency_threads: list[int] = Field(default_factory=lambda: [1, 2], min_length=1)
    eval_limit: int = Field(0, ge=0)


class VisualizeConfig(_Section):
    """`visualize@<arch>`: what the fine-tuned network learned, on task B's test images."""

    images: int = Field(1000, ge=1)      # test images searched for exemplars
    filters: int = Field(3, ge=1)        # filters shown per layer (early, middle, late)
    exemplars: int = Field(6, ge=1)      # top images per filter
    steps: int = Field(96, ge=1)         # activation maximisation: gradient-ascent steps
    step_size: float = Field(0.05, gt=0)
    cam_samples: int = Field(6, ge=1)    # Grad-CAM: this many correct and this many wrong


# The lecture's deployment comparison: canonical ImageNet-sized networks (random weights).
CANONICAL = ["vgg16", "resnet152", "googlenet", "resnet50", "densenet121", "mobilenet_v1",
             "mobilenet_v2"]


class SizesConfig(_Section):
    models: list[str] = Field(default_factory=lambda: list(CANONICAL), min_length=1)
    input_size: int = Field(224, ge=8)
    channels: Literal[1, 3] = 3
    num_classes: int = Field(1000, ge=2)

    @field_validator("models")
    @classmethod
    def _known(cls, models: list[str]) -> list[str]:
        return BaseConfig._known_archs(models)




class RobustnessConfig(_Section):
    """`robustness` (`make robustness`, not part of `make run`): every family's Keras model and
    int8 file on a corrupted copy of task B's test images."""

    images: int = Field(1000, ge=2)  # the first test images, each in 33 corrupted versions
