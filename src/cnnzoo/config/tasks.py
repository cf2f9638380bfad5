"""The other pipelines' sections of params.yaml: segmentation (and its data), detection,
verification, and `pipelines`, which says which of them run."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from cnnzoo.config.sections import BaseConfig, TrainConfig, _Section, project_path


def _registered(arch: str, task: str, kind: str) -> str:
    """`arch` if the registry has it for `task`, else the list of those it has."""
    from cnnzoo.config.catalogue import list_models

    if arch not in list_models(task):
        raise ValueError(f"unknown {kind} model {arch!r}; known: {', '.join(list_models(task))}")
    return arch


class SegmentDataConfig(_Section):
    """The segmentation data (cnnzoo/data/scenes.py): generated scenes from `data.source`'s
    images, the user's image/mask folder, or tfds:oxford_iiit_pet (online)."""

    source: Literal["scenes", "folder", "tfds:oxford_iiit_pet"] = "scenes"
    path: str | None = None  # folder: images/ and masks/ (class index per pixel, 0 = background)
    classes: list[str] | None = None  # folder: names of the mask indices, background first
    channels: Literal[1, 3] = 3  # folder and tfds images; scenes keep the source's own
    canvas: int = Field(64, ge=16, le=1024)
    min_items: int = Field(1, ge=1)
    max_items: int = Field(4, ge=1)
    threshold: int = Field(25, ge=0, le=254)  # an item's pixels: brighter than this (of 255)
    train_scenes: int = Field(4000, ge=1)
    val_scenes: int = Field(400, ge=1)
    test_scenes: int = Field(1000, ge=1)

    _path = field_validator("path")(project_path)

    @model_validator(mode="after")
    def _consistent(self) -> SegmentDataConfig:
        if self.min_items > self.max_items:
            raise ValueError(f"min_items={self.min_items} is more than max_items={self.max_items}")
        if self.source == "folder" and not (self.path and self.classes and len(self.classes) >= 2):
            raise ValueError("segment.data.source 'folder' needs path (images/ + masks/) and "
                             "classes (at least 2 names, index 0 = background)")
        return self


class _SceneTask(_Section):
    """What the two pipelines on scenes share: a model of their task from the registry (its
    settings in `models.<arch>`, like every model's), its training and the figure's scenes."""

    task: ClassVar[tuple[str, str]]  # (registry task, what the error message calls it)
    arch: str
    train: TrainConfig
    # Scenes shown in the figure (input / ground truth / prediction, or boxes).
    figure_scenes: int = Field(8, ge=1, le=32)

    @field_validator("arch")
    @classmethod
    def _of_task(cls, arch: str) -> str:
        return _registered(arch, *cls.task)


class SegmentConfig(_SceneTask):
    """U-Net segmentation."""

    task = ("segment", "segmentation")
    data: SegmentDataConfig = SegmentDataConfig()
    arch: str = "unet"
    # U-Net's contracting path: a classifier's layers (TernausNet's pretrained encoder), from
    # pretrain@<encoder> (pretrain) or at random (scratch); plain: the paper's own path. The
    # encoder is pretrain@<encoder>'s file, a dependency of the stage, so it is in base.archs.
    encoder: str = "vgg11"
    init: Literal["pretrain", "scratch", "plain"] = "pretrain"
    train: TrainConfig = TrainConfig(epochs=4, batch_size=32, learning_rate=0.003,
                                     label_smoothing=0.0, augment=False)

    @field_validator("encoder")
    @classmethod
    def _classifier(cls, encoder: str) -> str:
        return BaseConfig._known_archs([encoder])[0]


class DetectConfig(_SceneTask):
    """Single-shot detection (YOLO v1) on the segmentation scenes' item boxes; the grid, boxes
    and head width are the model's settings (`models.<arch>`)."""

    task = ("detect", "detection")
    arch: str = "yolo_v1"
    backbone: str = "resnet20"  # any classifier; its settings: models.<backbone>
    # pretrain: the backbone's layers start from pretrain@<backbone> (in base.archs); scratch.
    init: Literal["pretrain", "scratch"] = "pretrain"
    layer: str | None = None  # the backbone map the head reads (None: its last spatial one)
    lambda_coord: float = Field(5.0, ge=0)  # the paper's loss weights
    lambda_noobj: float = Field(0.5, ge=0)
    # The class term: the paper's squared error, or softmax cross-entropy.
    class_loss: Literal["squared", "crossentropy"] = "squared"
    # Ground truth: items showing at least this share of their pixels (the rest are hidden).
    min_visible: float = Field(0.5, gt=0, le=1)
    score_threshold: float = Field(0.01, ge=0, lt=1)  # detections kept for mAP
    nms_iou: float = Field(0.5, gt=0, le=1)
    train: TrainConfig = TrainConfig(epochs=8, batch_size=32, learning_rate=0.003,
                                     label_smoothing=0.0, augment=False)

    @field_validator("backbone")
    @classmethod
    def _classifier(cls, backbone: str) -> str:
        return BaseConfig._known_archs([backbone])[0]


class VerifyConfig(_Section):
    """Siamese verification: an embedding trained on task A's classes (triplet loss with online
    semi-hard mining), its binary pair variant, both evaluated one-shot on task B's classes."""

    backbone: str = "resnet20"
    # pretrain: start from pretrain@<backbone>'s task-A classifier (backbone must be in
    # base.archs); scratch: random weights.
    init: Literal["pretrain", "scratch"] = "pretrain"
    # The backbone layer that feeds the projection (spatial maps are flattened): `features` is
    # the classifier's own feature vector; an earlier layer keeps more of the image's layout.
    layer: str = "features"
    # The projection's width; 0 = none: the layer's flattened map, L2-normalised, is the
    # embedding (a projection learnt from task A's few classes discards what unseen ones need).
    embedding_dim: int = Field(64, ge=0)
    margin: float = Field(0.5, gt=0)
    # Who counts as one identity in the triplet loss. instance: every training image, seen as
    # two randomly shifted and flipped views (as many identities per step as images, none of
    # them a task-A class); class: task A's classes x `rotations`. Task A has five classes: an
    # embedding taught to tell those apart forgets what tells unseen ones apart.
    identities: Literal["instance", "class"] = "instance"
    # Virtual identities (identities: class, and the binary variant's pairs): every training
    # image is rotated by k x 90 degrees, k drawn at random from range(rotations), and (class, k)
    # is its identity (1 = off).
    rotations: Literal[1, 2, 4] = 4
    train: TrainConfig = TrainConfig(epochs=2, batch_size=64, learning_rate=0.001,
                                     label_smoothing=0.0, augment=True)
    # The binary variant: `pairs_per_epoch` balanced same/different pairs of task A per epoch.
    pairs: TrainConfig = TrainConfig(epochs=2, batch_size=64, learning_rate=0.001,
                                     label_smoothing=0.0, augment=False)
    pairs_per_epoch: int = Field(8000, ge=2)
    # One-shot identification: averaged over this many seeded galleries (one image per class).
    galleries: int = Field(20, ge=1)
    test_images: int = Field(0, ge=0)  # task-B test images paired (0 = all)

    @field_validator("backbone")
    @classmethod
    def _classifier(cls, backbone: str) -> str:
        return BaseConfig._known_archs([backbone])[0]


class PipelinesConfig(_Section):
    """The pipelines that run beside classification (which always runs: the others start from
    its pretrained backbones). Each is a list so that dvc.yaml's `matrix` builds a pipeline's
    stages only when it is listed: `[]` turns one off (DVC has no conditional stages)."""

    # scenes -> segment -> segment_evaluate -> segment_export: [segment.arch] or []
    segment: list[str] = Field(default_factory=lambda: ["unet"], max_length=1)
    # detect -> detect_evaluate -> detect_export on segmentation's scenes: [detect.arch] or []
    detect: list[str] = Field(default_factory=lambda: ["yolo_v1"], max_length=1)
    # verify, verify_pairs -> verify_evaluate -> verify_export: [siamese] or []
    verify: list[str] = Field(default_factory=lambda: ["siamese"], max_length=1)

    def selected(self) -> list[str]:
        """The pipelines that run, classification first."""
        return ["classify", *(name for name in ("segment", "detect", "verify")
                              if getattr(self, name))]


