"""Mixup / CutMix maths, deterministic shards, and the training stream."""

import numpy as np
import tensorflow as tf

from cnnzoo.config import AugmentConfig
from cnnzoo.data.augment import batch_mixer, build_augmenter, cutmix, mixup, write_shards
from cnnzoo.data.datasets import copies_dataset, load_copies
from tests.datafiles import read_shards


def batch(n=8, k=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 16, 16, 1), dtype=np.float32)
    y = np.eye(k, dtype=np.float32)[rng.integers(0, k, n)]
    return tf.constant(x), tf.constant(y)


def test_mixup_is_a_convex_combination_with_matching_labels():
    x, y = batch()
    xm, ym, lam, partner = (t.numpy() for t in mixup(x, y, 0.4, tf.constant([3, 4])))
    x, y = x.numpy(), y.numpy()
    assert ((lam >= 0) & (lam <= 1)).all() and lam.std() > 0  # one λ per sample
    expected = (1 - lam)[:, None, None, None] * x + lam[:, None, None, None] * x[partner]
    np.testing.assert_allclose(xm, expected, rtol=1e-6)
    np.testing.assert_allclose(ym, (1 - lam)[:, None] * y + lam[:, None] * y[partner], rtol=1e-6)
    np.testing.assert_allclose(ym.sum(axis=1), 1.0, rtol=1e-6)


def test_cutmix_labels_follow_the_pasted_area():
    x, y = batch(seed=1)
    xm, ym, area, partner = (t.numpy() for t in cutmix(x, y, 1.0, tf.constant([5, 6])))
    x, y = x.numpy(), y.numpy()
    other = partner != np.arange(len(x))  # a sample paired with itself is left as it is
    assert other.any()
    pasted = (xm == x[partner]) & (xm != x)
    np.testing.assert_allclose(pasted.mean(axis=(1, 2, 3))[other], area[other], atol=1e-6)
    np.testing.assert_array_equal(xm[~other], x[~other])
    np.testing.assert_allclose(ym, (1 - area)[:, None] * y + area[:, None] * y[partner], rtol=1e-6)
    np.testing.assert_allclose(ym.sum(axis=1), 1.0, rtol=1e-6)


def test_shards_are_byte_identical_for_the_same_seed(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 16, 16, 1), dtype=np.uint8)
    y = np.arange(40) % 4
    cfg = AugmentConfig(copies=2, erasing=0.5, crop_padding=2, rand_augment_ops=1)
    runs = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        (tmp_path / name).mkdir()
        runs.append([p.read_bytes() for p in write_shards(x, y, cfg, seed, tmp_path / name, "t")])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2] and runs[0][0] != runs[0][1]  # seeds and copies differ
    images = [im for im, _ in read_shards(sorted((tmp_path / "a").glob("*.tfrecord")),
                                          (16, 16, 1)).as_numpy_iterator()]
    assert len(images) == 80 and images[0].dtype == np.uint8 and not np.array_equal(images[0], x[0])


def test_copies_load_in_order_and_the_stream_mixes_every_batch(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (30, 16, 16, 1), dtype=np.uint8)
    y = np.arange(30) % 3
    cfg = AugmentConfig(copies=2, mixup_alpha=0.3, cutmix_alpha=0.3)
    shards = write_shards(x, y, cfg, 1, tmp_path, "t")
    copies, labels = load_copies(shards, (16, 16, 1), limit=24)
    assert copies.shape == (2, 24, 16, 16, 1) and np.array_equal(labels, y[:24])
    ds, steps = copies_dataset(copies, labels, batch_size=8, num_classes=3, seed=1,
                               mixer=batch_mixer(cfg))
    assert steps == 3
    xb, yb = next(iter(ds))
    assert xb.shape == (8, 16, 16, 1) and yb.shape == (8, 3)
    np.testing.assert_allclose(yb.numpy().sum(axis=1), 1.0, rtol=1e-6)
    assert (yb.numpy().max(axis=1) < 1).any()  # soft labels: mixing happened


def test_colour_jitter_only_on_colour_images():
    cfg = AugmentConfig(color_jitter=0.2)
    assert "color_jitter" not in [lyr.name for lyr in build_augmenter(cfg, 0, (32, 32, 1)).layers]
    assert "color_jitter" in [lyr.name for lyr in build_augmenter(cfg, 0, (32, 32, 3)).layers]
    assert batch_mixer(AugmentConfig()) is None
