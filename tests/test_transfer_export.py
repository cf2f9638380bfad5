"""Head swap / unfreeze, and TFLite conversion run through the LiteRT interpreter."""

import numpy as np
import pytest

from cnnzoo.config import AugmentConfig
from cnnzoo.data.augment import build_augmenter
from cnnzoo.deploy import convert
from cnnzoo.models import create_model
from cnnzoo.tasks.classification import classification_metrics
from cnnzoo.training.backbones import backbone_name, unfreeze, with_new_head


@pytest.fixture(scope="module")
def lenet():
    return create_model("lenet5", input_shape=(32, 32, 1), num_classes=10)


def test_new_head_freezes_backbone_then_unfreeze(lenet):
    model = with_new_head(lenet, 5)
    assert [w.shape for w in model.trainable_weights] == [(84, 5), (5,)]
    top2 = unfreeze(with_new_head(lenet, 5), 2)  # F6 and C5
    assert len(top2.trainable_weights) == 2 + 4
    assert len(unfreeze(model).trainable_weights) == len(lenet.trainable_weights)
    assert model.get_layer(backbone_name(model)).get_layer("c1_conv") is lenet.get_layer("c1_conv")
    with pytest.raises(ValueError, match="top_blocks=99"):
        unfreeze(with_new_head(lenet, 5), 99)


def test_tflite_float32_matches_keras_and_int8_runs(lenet):
    x = np.random.default_rng(0).random((16, 32, 32, 1), dtype=np.float32)
    keras_logits = lenet.predict(x, verbose=0)
    fp32 = convert.LiteModel(convert.convert(lenet, "float32"))
    lite_logits = np.stack([fp32.logits(img) for img in x])
    np.testing.assert_allclose(lite_logits, keras_logits, atol=1e-4)
    int8_bytes = convert.convert(lenet, "int8", x)
    int8 = convert.LiteModel(int8_bytes)
    assert int8.inp["dtype"] == np.int8
    assert len(int8_bytes) < 0.5 * len(convert.convert(lenet, "float32"))
    # Quantised logits stay close to the float ones on the calibration images.
    assert np.abs(np.stack([int8.logits(i) for i in x]) - keras_logits).max() < 0.25
    timing = int8.latency(x[0], runs=5, warmup=1)
    assert 0 < timing["median_ms"] <= timing["p90_ms"]
    with pytest.raises(ValueError, match="representative"):
        convert.convert(lenet, "int8")


def test_classification_metrics_by_hand():
    m, cm = classification_metrics(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1]), ["a", "b", "c"])
    assert m["accuracy"] == 0.5
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    assert m["per_class"]["b"] == {"precision": 1 / 3, "recall": 1.0}
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0}


def test_augmenter_changes_images_but_keeps_range_and_shape():
    aug = build_augmenter(AugmentConfig(), seed=0)
    x = np.random.default_rng(0).random((4, 32, 32, 1), dtype=np.float32)
    y = np.asarray(aug(x, training=True))
    assert y.shape == x.shape and not np.allclose(x, y) and y.min() >= 0 and y.max() <= 1.0001
    off = AugmentConfig(flip="none", rotation=0, translation=0, zoom=0, brightness=0, contrast=0,
                        erasing=0)
    assert build_augmenter(off, seed=0) is None
