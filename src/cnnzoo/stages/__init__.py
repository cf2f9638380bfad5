"""One function per DVC stage, one module per pipeline: `data` (download, augment), `classify`
(pretrain, transfer, finetune, scratch, augment_effect), `ship` (evaluate, export), `report`,
`sizes`, `segment` (scenes, U-Net), `detect` (YOLO v1), `verify` (Siamese), `visualize` (what a
network learned); `common`, `training` and `exporting` hold what they share.
`pipelines/<stage>.py` imports its functions from their module (so its DVC deps are that
module's imports, no more), parses paths and calls them through `common.run_stage`."""
