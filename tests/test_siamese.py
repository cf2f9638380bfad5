"""Siamese networks: one tower of shared weights, normalised embeddings, training through the
one `train.fit` with the triplet and pair objectives, TFLite conversion of the embedding."""

import keras
import numpy as np
import pytest

from cnnzoo.config import BaseConfig, TrainConfig
from cnnzoo.deploy import convert
from cnnzoo.models import create_model, siamese
from cnnzoo.training import loop
from cnnzoo.training.losses import TripletSemiHardLoss


def tower(dim=8):
    return siamese.embedding_model(siamese.backbone_from("lenet5", (32, 32, 1)), dim)


def test_embedding_is_unit_length_and_starts_from_a_classifier_backbone():
    clf = create_model("lenet5", input_shape=(32, 32, 1), num_classes=5)
    emb = siamese.embedding_model(siamese.backbone_from("lenet5", (32, 32, 1), clf), 16)
    x = np.random.default_rng(0).random((3, 32, 32, 1), dtype=np.float32)
    e = emb.predict(x, verbose=0)
    assert e.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)
    # The backbone shares the classifier's weights (the task-A features are the start).
    assert any(w is clf.get_layer("c1_conv").kernel for w in emb.weights)


def test_pair_model_has_one_tower_and_is_symmetric(tmp_path):
    pairs = siamese.pair_model(tower())
    assert sum(isinstance(lyr, keras.Model) for lyr in pairs.layers) == 1
    a, b = np.random.default_rng(1).random((2, 4, 32, 32, 1), dtype=np.float32)
    np.testing.assert_allclose(pairs.predict([a, b], verbose=0), pairs.predict([b, a], verbose=0),
                               rtol=1e-5, atol=1e-6)
    pairs.save(tmp_path / "p.keras")
    again = keras.models.load_model(tmp_path / "p.keras", safe_mode=True)
    np.testing.assert_allclose(again.predict([a, b], verbose=0), pairs.predict([a, b], verbose=0),
                               rtol=1e-5, atol=1e-6)
    assert siamese.tower(again).output_shape == (None, 8)


def test_triplet_training_through_the_one_fit_separates_two_identities(tmp_path):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 32)
    x = np.zeros((64, 32, 32, 1), np.float32)
    x[y == 0, :16] = 1.0  # identity 0: top half bright, 1: bottom half
    x[y == 1, 16:] = 1.0
    x += rng.normal(0, 0.3, x.shape).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(64, seed=0).batch(32).repeat()
    objective = loop.Objective(loss=lambda cfg: TripletSemiHardLoss(0.5),
                               metrics=lambda model: [],
                               target=lambda model: np.zeros((1,), np.int32))
    cfg = TrainConfig(epochs=4, learning_rate=0.01, label_smoothing=0.0)
    base = BaseConfig(archs=["lenet5"])
    model = loop.fit(tower, ds, tf.data.Dataset.from_tensor_slices((x, y)).batch(64), cfg,
                     base, history_csv=tmp_path / "h.csv", backup_dir=tmp_path / "b",
                     steps_per_epoch=8, objective=objective)
    e = model.predict(x, verbose=0)
    within = np.linalg.norm(e[y == 0][:, None] - e[y == 0][None], axis=-1).mean()
    between = np.linalg.norm(e[y == 0][:, None] - e[y == 1][None], axis=-1).mean()
    assert between > 2 * within
    assert (tmp_path / "h.csv").read_text().startswith("epoch")


def test_embedding_converts_to_int8_tflite():
    emb = tower()
    x = np.random.default_rng(2).random((8, 32, 32, 1), dtype=np.float32)
    files = convert.convert_all(emb, ["float32", "int8"], x)
    for variant in ("float32", "int8"):
        out = convert.LiteModel(files[variant]).predict_logits(x)
        assert out.shape == (8, 8)
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=0.05 if variant == "int8"
                                   else 1e-4)
    assert convert.float_ops(files["int8"]) == {}


def test_bad_embedding_dimension():
    with pytest.raises(ValueError, match="embedding dimension must be >= 0"):
        tower(-3)


def test_embedding_without_projection_is_the_layer_normalised():
    clf = create_model("lenet5", input_shape=(32, 32, 1), num_classes=5)
    backbone = siamese.backbone_from("lenet5", (32, 32, 1), clf, "s4_pool")
    emb = siamese.embedding_model(backbone, 0)
    x = np.random.default_rng(3).random((4, 32, 32, 1), dtype=np.float32)
    raw = backbone.predict(x, verbose=0)
    assert emb.output_shape == (None, 400) and "projection" not in [lyr.name for lyr in emb.layers]
    np.testing.assert_allclose(emb.predict(x, verbose=0),
                               raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-4, atol=1e-6)


def test_pair_head_starts_as_minus_the_l1_distance():
    pairs = siamese.pair_model(tower())
    a, b = np.random.default_rng(4).random((2, 5, 32, 32, 1), dtype=np.float32)
    ea, eb = (siamese.tower(pairs).predict(v, verbose=0) for v in (a, b))
    np.testing.assert_allclose(pairs.predict([a, b], verbose=0)[:, 0],
                               -np.abs(ea - eb).sum(axis=1), rtol=1e-4, atol=1e-5)


def test_instance_views_pair_each_image_with_a_shifted_flipped_view_of_itself():
    import tensorflow as tf

    from cnnzoo.stages.verify import instance_views

    rng = np.random.default_rng(5)
    x = rng.random((6, 12, 12, 1), dtype=np.float32)
    views, ids = next(iter(instance_views(
        tf.data.Dataset.from_tensor_slices((x, np.zeros(6, np.int32))).batch(6), seed=7)))
    views, ids = views.numpy(), ids.numpy()
    assert views.shape == (12, 12, 12, 1) and ids.tolist() == [*range(6), *range(6)]

    def is_view_of(v, img):  # some flip and shift of up to 2 pixels (zeros shifted in)
        padded = [np.pad(f, ((2, 2), (2, 2), (0, 0))) for f in (img, img[:, ::-1])]
        return any(np.array_equal(v, p[r:r + 12, c:c + 12]) for p in padded
                   for r in range(5) for c in range(5))

    assert all(is_view_of(views[k], x[k % 6]) for k in range(12))
    assert not is_view_of(views[0], x[1])
