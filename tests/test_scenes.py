"""Segmentation data: generated scenes, the user's image/mask folders and their errors."""

import os

import numpy as np
import pytest
from PIL import Image

from cnnzoo.config import SegmentDataConfig
from cnnzoo.data.scenes import compose, item_masks, load_folder_pairs


def items(n_classes=3, per_class=4, size=6):
    """Solid squares with a 1-pixel black border, class c drawn with value 100 + 50 c."""
    x = np.zeros((n_classes * per_class, size, size, 1), np.uint8)
    y = np.repeat(np.arange(n_classes), per_class).astype(np.int32)
    for i, c in enumerate(y):
        x[i, 1:-1, 1:-1] = 100 + 50 * c
    return x, y


def test_scenes_label_every_item_pixel_with_its_class_and_later_items_occlude():
    x, y = items()
    cfg = SegmentDataConfig(canvas=16, min_items=1, max_items=4, threshold=25)
    scenes, masks, boxes = compose(x, y, 50, cfg, np.random.default_rng(0))
    assert scenes.shape == (50, 16, 16, 1) and masks.shape == (50, 16, 16)
    # A pixel's label says which item's pixels show there: value 100 + 50 (label - 1).
    shown = scenes[..., 0]
    np.testing.assert_array_equal(shown[masks > 0], 100 + 50 * (masks[masks > 0].astype(int) - 1))
    assert (shown[masks == 0] == 0).all()
    assert set(np.unique(masks)) == {0, 1, 2, 3}
    # Boxes: every present item's visible box encloses exactly its class's visible pixels.
    assert boxes.shape == (50, 4, 6)
    for s in range(50):
        present = boxes[s][boxes[s, :, 0] >= 0]
        assert len(present) >= 1 and ((present[:, 5] > 0) & (present[:, 5] <= 1)).all()
        for cls, x0, y0, x1, y1, _ in present:
            inside = masks[s, int(y0):int(y1), int(x0):int(x1)] == cls + 1
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
    # Occlusion: one scene, two items at the same place: the second one's label wins, and the
    # first one is hidden (no box, class -1).
    cfg2 = SegmentDataConfig(min_items=2, max_items=2).model_copy(update={"canvas": 6})
    _, m, b = compose(x[[0, 4]], y[[0, 4]], 1, cfg2, np.random.default_rng(0))
    assert (m[0][1:-1, 1:-1] == 2).all()
    np.testing.assert_array_equal(b[0], [[-1] * 6, [1, 1, 1, 5, 5, 1.0]])


def test_item_masks_and_bad_canvas():
    x, y = items()
    assert item_masks(x, 25).sum() == len(x) * 16
    with pytest.raises(ValueError, match="canvas=4 is smaller"):
        compose(x, y, 1, SegmentDataConfig(canvas=16).model_copy(update={"canvas": 4}),
                np.random.default_rng(0))


def write_pairs(root, n=5, size=(10, 8), mask_size=None, max_label=2):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(
            root / "images" / f"s{i}.png")
        ms = mask_size if (mask_size and i == n - 1) else size
        Image.fromarray(rng.integers(0, max_label + 1, ms[::-1], dtype=np.uint8)).save(
            root / "masks" / f"s{i}.png")


@pytest.fixture(autouse=True)
def _in_project(tmp_path, monkeypatch):
    """Params paths stay inside the project (the working folder): the tests run above theirs."""
    monkeypatch.chdir(tmp_path.parent)


def folder_cfg(root, classes=("background", "a", "b")):
    return SegmentDataConfig(source="folder", path=os.path.relpath(root), classes=list(classes),
                             canvas=16, channels=1)


def test_folder_pairs_are_resized_and_split(tmp_path):
    write_pairs(tmp_path, n=10)
    splits, names = load_folder_pairs(folder_cfg(tmp_path), 0, 0.2, 0.2)
    assert names == ["background", "a", "b"]
    assert {k: len(v[0]) for k, v in splits.items()} == {"test": 2, "val": 2, "train": 6}
    x, y = splits["train"]
    assert x.shape == (6, 16, 16, 1) and y.shape == (6, 16, 16) and y.max() <= 2


def test_mask_of_another_size_is_named(tmp_path):
    write_pairs(tmp_path, mask_size=(9, 8))
    with pytest.raises(ValueError, match="s4.png: mask is 9×8 but its image .*s4.png is 10×8"):
        load_folder_pairs(folder_cfg(tmp_path), 0, 0.2, 0.2)


def test_class_index_outside_the_declared_classes_is_named(tmp_path):
    write_pairs(tmp_path, max_label=5)
    with pytest.raises(ValueError, match=r"masks/s\d.png: class index [3-5] is outside the "
                                         r"declared classes 0..2"):
        load_folder_pairs(folder_cfg(tmp_path), 0, 0.2, 0.2)


def test_missing_mask_and_missing_folder(tmp_path):
    write_pairs(tmp_path)
    (tmp_path / "masks" / "s2.png").unlink()
    with pytest.raises(FileNotFoundError, match="s2.png: no mask"):
        load_folder_pairs(folder_cfg(tmp_path), 0, 0.2, 0.2)
    with pytest.raises(FileNotFoundError, match="needs images/ and masks/"):
        load_folder_pairs(folder_cfg(tmp_path / "nowhere"), 0, 0.2, 0.2)
    with pytest.raises(ValueError, match="needs path .* and classes"):
        SegmentDataConfig(source="folder", path=os.path.relpath(tmp_path))


def test_validation_and_test_scenes_do_not_depend_on_the_training_budget(monkeypatch):
    """Two train_scenes budgets give the same validation and test scenes (their results compare
    on the same items), and a seed gives the same scenes twice."""
    from types import SimpleNamespace

    from cnnzoo.config import DataConfig
    from cnnzoo.data import scenes

    x, y = items(n_classes=3, per_class=20, size=6)
    raw = SimpleNamespace(x_train=x, y_train=y, x_test=x[::2], y_test=y[::2],
                          class_names=["a", "b", "c"])
    monkeypatch.setattr(scenes, "load_source", lambda data, cache_dir: raw)

    def generate(train_scenes, seed=1):
        cfg = SegmentDataConfig(canvas=16, train_scenes=train_scenes, val_scenes=5, test_scenes=7)
        return scenes.generate_scenes(DataConfig(), cfg, seed, "unused")[0]

    small, large = generate(10), generate(40)
    assert len(small["train"][0]) == 10 and len(large["train"][0]) == 40
    for split in ("val", "test"):
        for a, b in zip(small[split], large[split], strict=True):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(generate(10)["train"][0], small["train"][0])
    assert not np.array_equal(generate(10, seed=2)["test"][0], small["test"][0])
