import numpy as np
import pytest

from cnnzoo.config import DataConfig
from cnnzoo.data.fetch import fetch
from cnnzoo.data.prepare import first_labels, fit_images, interleave, make_splits, pad_to
from cnnzoo.data.sources import RawDataset, load_idx


def raw_from(idx_dataset, tmp_path) -> RawDataset:
    folder, spec = idx_dataset
    return load_idx(spec, fetch(spec, tmp_path / "c", sources=[str(folder)]),
                    tuple(f"c{i}" for i in range(10)))


def test_pad_to_32_centres_the_image():
    x = np.ones((2, 28, 28), np.uint8)
    p = pad_to(x, 32)
    assert p.shape == (2, 32, 32, 1) and p.sum() == x.sum()
    assert p[0, 2:30, 2:30, 0].all() and not p[0, :2].any()
    with pytest.raises(ValueError, match="smaller than the images"):
        pad_to(x, 20)


def test_splits_are_stratified_disjoint_remapped_and_seeded(idx_dataset, tmp_path):
    raw = raw_from(idx_dataset, tmp_path)
    cfg = DataConfig(labels_per_class=5, b_pool_per_class=5, val_per_class=3, val_fraction=0.25)
    s, (a, b) = make_splits(raw, cfg, seed=1)
    assert a == [0, 2, 4, 6, 8] and b == [1, 3, 5, 7, 9]
    assert set(s) == {"a_train", "a_val", "b_train", "b_val", "b_test"}
    for _, y in s.values():
        assert set(np.unique(y)) == set(range(5))  # renumbered 0..4 within each task
    assert np.bincount(s["b_train"][1]).tolist() == [5] * 5
    assert np.bincount(s["b_val"][1]).tolist() == [3] * 5
    assert len(s["a_val"][1]) == 5 * 10 and len(s["a_train"][1]) == 5 * 30
    assert s["b_test"][1].size == 50 and s["a_train"][0].shape[1:] == (32, 32, 1)
    again, _ = make_splits(raw, cfg, seed=1)
    np.testing.assert_array_equal(again["b_train"][0], s["b_train"][0])
    # B's few-shot training images and its validation images never overlap.
    tr = {a.tobytes() for a in s["b_train"][0]}
    assert not tr & {a.tobytes() for a in s["b_val"][0]}


def test_too_few_images_for_the_few_shot_task(idx_dataset, tmp_path):
    raw = raw_from(idx_dataset, tmp_path)
    with pytest.raises(ValueError, match="fewer training images than val_per_class"):
        make_splits(raw, DataConfig(labels_per_class=30, b_pool_per_class=30, val_per_class=20),
                    seed=0)
    with pytest.raises(ValueError, match="more than b_pool_per_class"):
        DataConfig(labels_per_class=30, b_pool_per_class=20)
    with pytest.raises(ValueError, match=r"task_b_classes: classes \[12\] are outside 0..9"):
        make_splits(raw, DataConfig(task_a_classes=[0, 1], task_b_classes=[2, 12]), seed=0)


def test_all_classes_in_both_tasks_keeps_images_disjoint(idx_dataset, tmp_path):
    raw = raw_from(idx_dataset, tmp_path)
    cfg = DataConfig(task_a_classes="all", task_b_classes="all", labels_per_class=4,
                     b_pool_per_class=4, val_per_class=2)
    s, (a, b) = make_splits(raw, cfg, seed=3)
    assert a == b == list(range(10))
    a_imgs = {im.tobytes() for split in ("a_train", "a_val") for im in s[split][0]}
    b_imgs = {im.tobytes() for split in ("b_train", "b_val") for im in s[split][0]}
    assert not a_imgs & b_imgs and len(s["b_train"][1]) == 40


def test_fit_images_converts_channels_and_resizes():
    rgb = np.zeros((2, 32, 32, 3), np.uint8)
    rgb[..., 0] = 255
    gray = fit_images(rgb, 32, 1, "pad")
    assert gray.shape == (2, 32, 32, 1) and gray[0, 0, 0, 0] == 76  # 0.299 · 255
    assert fit_images(gray, 32, 3, "pad").shape == (2, 32, 32, 3)
    assert fit_images(rgb, 16, None, "resize").shape == (2, 16, 16, 3)


def test_label_budgets_are_nested_prefixes_of_one_pool(idx_dataset, tmp_path):
    """The pool is class-interleaved: the first n x k images hold n per class, and a smaller
    budget's images are part of every larger one's (a label sweep reuses one download)."""
    assert interleave([np.array([1, 2, 3]), np.array([7])]).tolist() == [1, 7, 2, 3]
    raw = raw_from(idx_dataset, tmp_path)
    s, _ = make_splits(raw, DataConfig(labels_per_class=2, b_pool_per_class=20,
                                       val_per_class=5), seed=0)
    x, y = s["b_train"]
    assert len(y) == 100 and y[:10].tolist() == [0, 1, 2, 3, 4] * 2
    for n in (1, 3, 20, 0):
        xn, yn = first_labels(x, y, n, 5)
        assert np.bincount(yn).tolist() == [n or 20] * 5
        np.testing.assert_array_equal(xn, x[: len(yn)])
    with pytest.raises(ValueError, match="raise data.b_pool_per_class"):
        first_labels(x, y, 21, 5)


def test_full_data_classifier_shares_the_pool_with_task_a(idx_dataset, tmp_path):
    raw = raw_from(idx_dataset, tmp_path)
    cfg = DataConfig(task_b_classes="all", labels_per_class=0, b_pool_per_class=0,
                     val_per_class=4)
    s, (a, b) = make_splits(raw, cfg, seed=0)
    assert b == list(range(10)) and len(s["b_train"][1]) == 10 * 36  # every image but val's
    assert len(s["a_train"][1]) + len(s["a_val"][1]) == 5 * 36  # A reuses B's pool images
