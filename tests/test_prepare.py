import numpy as np
import pytest

from cnnzoo.config import DataConfig
from cnnzoo.data.fetch import fetch
from cnnzoo.data.prepare import RawDataset, load_idx_dataset, make_splits, pad_to


def raw_from(idx_dataset, tmp_path) -> RawDataset:
    folder, spec = idx_dataset
    return load_idx_dataset(spec, fetch(spec, tmp_path / "c", sources=[str(folder)]),
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
    cfg = DataConfig(labels_per_class=5, val_per_class=3, val_fraction=0.25)
    s = make_splits(raw, cfg, seed=1)
    assert set(s) == {"a_train", "a_val", "b_train", "b_val", "b_test"}
    for _, y in s.values():
        assert set(np.unique(y)) == set(range(5))  # renumbered 0..4 within each task
    assert np.bincount(s["b_train"][1]).tolist() == [5] * 5
    assert np.bincount(s["b_val"][1]).tolist() == [3] * 5
    assert len(s["a_val"][1]) == 5 * 10 and len(s["a_train"][1]) == 5 * 30
    assert s["b_test"][1].size == 50 and s["a_train"][0].shape[1:] == (32, 32, 1)
    again = make_splits(raw, cfg, seed=1)
    np.testing.assert_array_equal(again["b_train"][0], s["b_train"][0])
    # B's few-shot training images and its validation images never overlap.
    tr = {a.tobytes() for a in s["b_train"][0]}
    assert not tr & {a.tobytes() for a in s["b_val"][0]}


def test_too_few_images_for_the_few_shot_task(idx_dataset, tmp_path):
    raw = raw_from(idx_dataset, tmp_path)
    with pytest.raises(ValueError, match="fewer than labels_per_class"):
        make_splits(raw, DataConfig(labels_per_class=30, val_per_class=20), seed=0)
