"""The visualisation pipeline: `visualize@<arch>` shows what the fine-tuned network learned
(first-layer filters, top exemplars of early / middle / late filters, activation maximisation,
Grad-CAM on correct and wrong test predictions) and its training curves across the phases."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cnnzoo.config import Params
from cnnzoo.data.serving_input import to_unit
from cnnzoo.files import atomic_path
from cnnzoo.stages.common import experiment_tags
from cnnzoo.tracking.client import stage_run

log = logging.getLogger(__name__)
# The phases of a fine-tuned classifier, in order: (name, the stage whose history CSV it is).
PHASES = (("pretrain (task A)", "pretrain"), ("linear probe (B)", "transfer"),
          ("fine-tune (B)", "finetune"))
FIGURES = ("filters.png", "exemplars.png", "maximization.png", "gradcam.png", "curves.png")


def _cam_sample(predicted: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    """The first `n` correct and the first `n` wrong predictions (fewer when there are fewer)."""
    right, wrong = np.flatnonzero(predicted == y), np.flatnonzero(predicted != y)
    return np.r_[right[:n], wrong[:n]].astype(int)


def visualize(params: Params, *, arch: str, prepared: str, model: str, histories: str,
              out: str) -> None:
    """PNGs in `out` (written as a whole), logged to a `visualize-<arch>` MLflow run."""
    import keras

    from cnnzoo.data.datasets import load_meta, load_split
    from cnnzoo.reporting import insight, insight_figures
    from cnnzoo.tasks.classification import predict_classes

    cfg = params.visualize
    names = load_meta(prepared)["task_b"]["names"]
    x8, y = (a[: cfg.images] for a in load_split(prepared, "b_test"))
    x = to_unit(x8)
    with stage_run("visualize", arch, experiment=params.base.experiment,
                   params={"visualize": cfg.model_dump(), "test_images": len(x)},
                   tags=experiment_tags(params)) as run:
        net = keras.models.load_model(model)
        with atomic_path(out) as tmp:
            tmp.mkdir()
            insight_figures.filters_figure(insight.first_filters(net), tmp / "filters.png",
                                           f"{arch}: first-layer filters (grey = 0)")
            found = insight.top_exemplars(net, x, filters=cfg.filters, k=cfg.exemplars)
            insight_figures.exemplars_figure(found, x, tmp / "exemplars.png",
                                             f"{arch}: the {cfg.exemplars} test images that most activate "
                                             "filters of an early, a middle and a late layer")
            best = insight.maximize_classes(net, list(range(len(names))), steps=cfg.steps,
                                            step_size=cfg.step_size, seed=params.base.seed)
            insight_figures.maximization_figure(best, names, tmp / "maximization.png",
                                                f"{arch}: activation maximisation of each class's logit "
                                                f"({cfg.steps} steps from seeded noise, jitter + blur)")
            predicted = predict_classes(net, x8)
            pick = _cam_sample(predicted, y, cfg.cam_samples)
            layer = insight.cam_layer(net)
            cams = insight.grad_cam(net, x[pick], predicted[pick], layer)
            insight_figures.gradcam_figure(
                x[pick], cams, [names[i] for i in y[pick]], [names[i] for i in predicted[pick]],
                tmp / "gradcam.png", f"{arch}: Grad-CAM of the predicted class at {layer.name} "
                f"({layer.output.shape[1]}x{layer.output.shape[2]})")
            phases = [(name, insight_figures.read_history(Path(histories) / stage / f"{arch}.csv"))
                      for name, stage in PHASES
                      if (Path(histories) / stage / f"{arch}.csv").is_file()]
            insight_figures.curves_figure(phases, tmp / "curves.png",
                                          f"{arch}: training curves, pretrain -> probe -> fine-tune")
        for name in FIGURES:
            run.log_artifact(Path(out) / name, folder="visualize")
    log.info("visualize %s: %s in %s (Grad-CAM at %s)", arch, ", ".join(FIGURES), out, layer.name)
