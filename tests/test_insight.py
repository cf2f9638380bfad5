"""What a network learned: every classification family (grouped, depthwise and concatenating
blocks included) through filters, exemplars, activation maximisation and Grad-CAM on tiny
inputs; Grad-CAM against CAM on a network where the two are equal."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cnnzoo.models import get_entry, list_models
from cnnzoo.reporting import insight, insight_figures
from tests.conftest import tiered
from tests.test_models import small

# One registered variant per family of list_models() (a family's variants share their block
# code), so a new family is covered as soon as it is registered.
FAMILIES = list({get_entry(name).family: name for name in reversed(list_models())}.values())


@pytest.mark.parametrize("name", tiered(FAMILIES))
def test_insight_on_every_family(name, tmp_path):
    model = small(name)  # (32, 32, 1) input, 7 classes
    x = np.random.default_rng(0).random((12, 32, 32, 1), dtype=np.float32)

    filters = insight.first_filters(model)
    assert filters.ndim == 4 and filters.shape[-1] == 1 and len(filters) >= 4
    assert filters.min() >= 0 and filters.max() <= 1

    found = insight.top_exemplars(model, x, filters=2, k=3)
    assert [e.depth for e in found][0] == "early"
    # Deeper layers too, but for the lecture's one-convolution network (first_cnn).
    assert found[-1].depth in ("late", "middle") or len(found) == 1
    for ex in found:  # the first exemplar really is the image with the largest peak
        out = keras.Model(model.input, model.get_layer(ex.layer).output)(x, training=False)
        peaks = tf.reduce_max(out, axis=(1, 2)).numpy()
        for f, idx in zip(ex.filters, ex.images, strict=True):
            assert len(idx) == 3 and peaks[idx[0], f] == peaks[:, f].max()

    start = model(0.5 + 0.05 * np.random.default_rng(3).standard_normal((3, 32, 32, 1))
                  .astype(np.float32), training=False).numpy()
    best = insight.maximize_classes(model, [0, 1, 2], steps=6, step_size=0.01, jitter=0,
                                    blur_every=0, seed=3)
    assert best.shape == (3, 32, 32, 1) and best.min() >= 0 and best.max() <= 1
    after = model(best, training=False).numpy()
    gain = np.array([after[i, i] - start[i, i] for i in range(3)])
    # Each class's logit went up (an untrained MobileNet's logits are ~1e-17: nothing to climb).
    assert (gain >= -1e-6).all() and (gain.sum() > 0 or np.abs(start).max() < 1e-9), gain

    cams = insight.grad_cam(model, x[:4], np.array([0, 1, 2, 3]))
    assert cams.shape == (4, 32, 32) and np.isfinite(cams).all()
    assert cams.min() >= 0 and cams.max() <= 1 + 1e-6

    insight_figures.filters_figure(filters, tmp_path / "f.png", name)
    insight_figures.exemplars_figure(found, x, tmp_path / "e.png", name)
    insight_figures.gradcam_figure(x[:4], cams, ["a", "b", "c", "d"], ["a", "x", "c", "y"],
                                   tmp_path / "g.png", name)
    assert all((tmp_path / f).stat().st_size > 1000 for f in ("f.png", "e.png", "g.png"))


def test_grad_cam_equals_cam_on_conv_gap_dense():
    """conv -> global average pooling -> dense: Grad-CAM's channel weights are the dense
    weights / (H x W), so the heatmap is CAM (Zhou et al. 2016), normalised."""
    inputs = keras.Input((8, 8, 1))
    maps = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c")(inputs)
    logits = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(maps))
    model = keras.Model(inputs, logits)
    x = np.random.default_rng(1).random((2, 8, 8, 1), dtype=np.float32)
    got = insight.grad_cam(model, x, np.array([2, 0]), model.get_layer("c"))
    a = keras.Model(inputs, maps)(x).numpy()
    w = model.layers[-1].kernel.numpy()
    for i, c in enumerate([2, 0]):
        cam = np.maximum((a[i] * w[:, c]).sum(-1), 0)
        cam = cam / cam.max() if cam.max() > 0 else cam
        np.testing.assert_allclose(got[i], cam, atol=1e-5)  # same size: resize is identity


def test_cam_layer_prefers_a_map_at_least_four_wide():
    model = small("lenet5")  # c5 is 1x1: too coarse for a heatmap
    layer = insight.cam_layer(model)
    assert layer.output.shape[1] >= 4


def test_curves_figure_reads_the_phases(tmp_path):
    for stage, n in (("pretrain", 3), ("finetune", 2)):
        rows = ["epoch,accuracy,loss,val_accuracy,val_loss"]
        rows += [f"{e},{0.5 + e / 10},{1 - e / 10},{0.4 + e / 10},{1.1 - e / 10}" for e in range(n)]
        (tmp_path / f"{stage}.csv").write_text("\n".join(rows) + "\n")
    phases = [(s, insight_figures.read_history(tmp_path / f"{s}.csv")) for s in ("pretrain", "finetune")]
    assert len(phases[0][1]["val_loss"]) == 3
    insight_figures.curves_figure(phases, tmp_path / "c.png", "curves")
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_a_transferred_model_is_seen_through_its_backbone():
    """Input -> backbone (nested model) -> head, as the transfer stage builds it: the same
    feature layers, exemplars and Grad-CAM as the flat model with the same weights."""
    from cnnzoo.training import backbones

    flat = small("lenet5")
    backbone = backbones.extract_backbone(flat)
    inputs = keras.Input(flat.input_shape[1:])
    nested = keras.Model(inputs, flat.get_layer("head")(backbone(inputs)))
    x = np.random.default_rng(2).random((6, 32, 32, 1), dtype=np.float32)
    assert [la.name for la in insight.feature_layers(nested)] == \
        [la.name for la in insight.feature_layers(flat)]
    a, b = insight.top_exemplars(flat, x, k=2), insight.top_exemplars(nested, x, k=2)
    assert all((p.images == q.images).all() for p, q in zip(a, b, strict=True))
    classes = np.arange(6) % 3
    np.testing.assert_allclose(insight.grad_cam(nested, x, classes),
                               insight.grad_cam(flat, x, classes), atol=1e-5)
