"""One function per DVC stage, one module per pipeline: `data` (download, augment), `classify`
(pretrain, transfer, finetune, scratch, augment_effect), `ship` (evaluate, export, report),
`sizes`, `segment` (scenes, U-Net), `detect` (YOLO v1), `verify` (Siamese), `visualize` (what a
network learned).
`pipelines/<stage>.py` only parses paths and calls these through `run_stage`."""

from cnnzoo.stages.classify import augment_effect, finetune, pretrain, scratch, transfer
from cnnzoo.stages.common import run_stage, training_data
from cnnzoo.stages.data import augment, download
from cnnzoo.stages.detect import detect, detect_evaluate, detect_export
from cnnzoo.stages.segment import scenes, segment, segment_evaluate, segment_export
from cnnzoo.stages.ship import evaluate, export, report
from cnnzoo.stages.sizes import sizes
from cnnzoo.stages.verify import verify, verify_evaluate, verify_export, verify_pairs
from cnnzoo.stages.visualize import visualize

__all__ = ["augment", "augment_effect", "detect", "detect_evaluate", "detect_export", "download",
           "evaluate", "export", "finetune", "pretrain", "report", "run_stage", "scenes", "scratch",
           "segment", "segment_evaluate", "segment_export", "sizes", "training_data", "transfer",
           "verify", "verify_evaluate", "verify_export", "verify_pairs", "visualize"]
