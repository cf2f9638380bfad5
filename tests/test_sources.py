"""Every data source on generated files: CIFAR binary records and tarballs (unsafe members
refused), MNIST's archive MD5, image folders with corrupt and non-image files."""

import gzip
import hashlib
import io
import tarfile

import numpy as np
import pytest
from PIL import Image

from cnnzoo.data.fetch import DataFile, DatasetSpec, DataUnavailableError, fetch
from cnnzoo.data.sources import UnsafeArchiveError, load_folder, read_cifar_records, safe_extract
from tests.datafiles import to_idx


def cifar_bytes(n: int, label_bytes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    rec = [np.concatenate([np.full(label_bytes - 1, 7, np.uint8), labels[i:i + 1],
                           images[i].transpose(2, 0, 1).ravel()]) for i in range(n)]
    return np.concatenate(rec).tobytes(), images, labels


@pytest.mark.parametrize("label_bytes", [1, 2])  # CIFAR-10; CIFAR-100 (coarse, fine)
def test_cifar_binary_records(tmp_path, label_bytes):
    raw, images, labels = cifar_bytes(12, label_bytes)
    (tmp_path / "b.bin").write_bytes(raw)
    x, y = read_cifar_records(tmp_path / "b.bin", label_bytes)
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    (tmp_path / "bad.bin").write_bytes(raw[:-5])
    with pytest.raises(ValueError, match="not a whole number"):
        read_cifar_records(tmp_path / "bad.bin", label_bytes)


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_safe_extract_accepts_plain_and_refuses_escapes(tmp_path):
    good = tmp_path / "good.tar.gz"
    _tar(good, [("cifar-10-batches-bin/test_batch.bin", b"x" * 10)])
    out = safe_extract(good, tmp_path / "out")
    assert (out / "cifar-10-batches-bin/test_batch.bin").read_bytes() == b"x" * 10
    for bad_name in ("../evil.bin", "/etc/evil.bin", "a/../../evil.bin"):
        bad = tmp_path / "bad.tar.gz"
        _tar(bad, [("ok.bin", b"1"), (bad_name, b"2")])
        with pytest.raises(UnsafeArchiveError, match="refusing member"):
            safe_extract(bad, tmp_path / "out2")
        assert not (tmp_path / "out2").exists() and not (tmp_path / "evil.bin").exists()
    link = tmp_path / "link.tar.gz"
    with tarfile.open(link, "w:gz") as tar:
        info = tarfile.TarInfo("data.bin")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(UnsafeArchiveError, match="link"):
        safe_extract(link, tmp_path / "out3")


def test_archive_md5_is_checked_like_mnist(tmp_path, http_server):
    payload = to_idx(np.arange(12, dtype=np.uint8).reshape(3, 4))
    gz = gzip.compress(payload)
    served = tmp_path / "served"
    served.mkdir()
    (served / "x-idx1-ubyte.gz").write_bytes(gz)
    good = DataFile("x-idx1-ubyte", None, len(payload), hashlib.md5(gz).hexdigest())
    spec = DatasetSpec("t", (good,), urls=())
    out = fetch(spec, tmp_path / "cache", sources=[http_server(served)])
    assert (out / "x-idx1-ubyte").read_bytes() == payload
    wrong = DatasetSpec("t", (DataFile("x-idx1-ubyte", None, len(payload), "0" * 32),), urls=())
    with pytest.raises(DataUnavailableError, match="expected md5 0{32}"):
        fetch(wrong, tmp_path / "cache2", sources=[str(served)])


def _image(path, color, mode="RGB", fmt=None):
    Image.new(mode, (20, 24), color).save(path, format=fmt)


def test_folder_source_skips_bad_files_and_reports_why(tmp_path):
    root = tmp_path / "imgs"
    for cls, color in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            _image(root / cls / f"{i}.png", color)
    _image(root / "cat" / "x.jpg", (250, 10, 10), fmt="JPEG")
    _image(root / "dog" / "g.gif", (0, 0, 200), mode="P", fmt="GIF")
    _image(root / "dog" / "b.bmp", (0, 0, 210), fmt="BMP")
    jpeg = (root / "cat" / "x.jpg").read_bytes()
    (root / "cat" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / "empty").mkdir()
    raw = load_folder(root, 16, 1)
    assert raw.class_names == ("cat", "dog")
    assert raw.x_train.shape == (9, 16, 16, 1) and raw.x_test is None
    assert np.bincount(raw.y_train).tolist() == [4, 5]
    reasons = {p.rsplit("/", 1)[-1]: why for p, why in raw.skipped}
    assert set(reasons) == {"truncated.jpg", "notes.txt", "empty"}
    assert "not a readable image" in reasons["truncated.jpg"]
    assert "not an image file (.txt)" in reasons["notes.txt"]
    assert "no usable images" in reasons["empty"]
    assert load_folder(root, 16, 3).x_train.shape == (9, 16, 16, 3)


def _folder(root, images: dict[str, list[np.ndarray]]):
    for cls, arrays in images.items():
        (root / cls).mkdir(parents=True)
        for i, a in enumerate(arrays):
            Image.fromarray(a).save(root / cls / f"{i}.png")
    return root


def test_folder_keeps_its_own_channels_and_pads_as_params_say(tmp_path):
    """data.channels null keeps a grey folder grey (1 channel) and a folder with any colour image
    RGB; data.fit pad centres 24-px images in 32 px unscaled, resize scales them; larger images
    shrink (aspect kept) before padding."""
    rng = np.random.default_rng(0)
    grey = [rng.integers(1, 256, (24, 24), dtype=np.uint8) for _ in range(2)]
    root = _folder(tmp_path / "grey", {"a": grey, "b": [g[::-1] for g in grey]})
    raw = load_folder(root, 32, None, "pad")
    assert raw.x_train.shape == (4, 32, 32, 1) and raw.source_size == (24, 24)
    np.testing.assert_array_equal(raw.x_train[0, 4:28, 4:28, 0], grey[0])
    assert raw.x_train[0, :4].max() == 0 and raw.x_train[0, :, 28:].max() == 0
    resized = load_folder(root, 32, None, "resize")
    assert resized.x_train.shape == (4, 32, 32, 1) and resized.source_size is None
    assert resized.x_train[0, :4].min() > 0  # scaled to fill the frame, no zero border

    colour = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    mixed = _folder(tmp_path / "mixed", {"a": grey, "b": [colour]})
    assert load_folder(mixed, 32, None).x_train.shape == (3, 32, 32, 3)
    assert load_folder(mixed, 32, 1).x_train.shape == (3, 32, 32, 1)

    odd = _folder(tmp_path / "odd", {"a": [rng.integers(0, 256, (50, 20), dtype=np.uint8)],
                                     "b": [rng.integers(0, 256, (10, 30), dtype=np.uint8)]})
    raw = load_folder(odd, 16, None, "pad")
    assert raw.x_train.shape == (2, 16, 16, 1) and raw.source_size is None
    tall = raw.x_train[0, :, :, 0]  # 50x20 -> 16x6, centred: columns 5..10 hold the image
    assert tall[:, :5].max() == 0 and tall[:, 11:].max() == 0 and tall[:, 5:11].max() > 0


def test_folder_images_16_bit_are_scaled_and_oversized_ones_skipped(tmp_path):
    """A 16-bit PNG reads as its 8-bit original (PIL's conversion would clip it); a file over
    data.max_pixels is skipped, listed with its size, before it is decoded."""
    root = tmp_path / "imgs"
    grey = np.random.default_rng(0).integers(0, 256, (20, 20), dtype=np.uint8)
    for cls in ("eight", "sixteen"):
        (root / cls).mkdir(parents=True)
    Image.fromarray(grey).save(root / "eight" / "a.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(root / "sixteen" / "a.png")
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(root / "sixteen" / "big.png")
    raw = load_folder(root, 20, 1, max_pixels=400)
    np.testing.assert_array_equal(raw.x_train[0], raw.x_train[1])
    assert raw.skipped == [(str(root / "sixteen" / "big.png"),
                            "30x30 = 900 pixels, over the limit of 400 (raise data.max_pixels, "
                            "or --max-pixels for predict)")]


def test_folder_with_one_usable_class_fails_with_reason(tmp_path):
    root = tmp_path / "imgs"
    (root / "only").mkdir(parents=True)
    _image(root / "only" / "a.png", (1, 2, 3))
    (root / "broken").mkdir()
    (root / "broken" / "a.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match="need at least 2 class folders.*found 1 \\(only\\)"):
        load_folder(root, 16, 1)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        load_folder(tmp_path / "missing", 16, 1)


def test_cifar10_source_end_to_end_from_a_mirror(tmp_path, monkeypatch):
    """fetch (archive checksum) -> safe extraction -> records and class names, via load_source."""
    from cnnzoo.config import DataConfig
    from cnnzoo.data import sources
    from cnnzoo.data.fetch import MIRROR_ENV, OFFLINE_ENV

    train, images, labels = cifar_bytes(20, 1)
    test, _, _ = cifar_bytes(10, 1, seed=1)
    names = [f"class{i}" for i in range(10)]
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    members = [(f"cifar-10-batches-bin/data_batch_{i}.bin", train if i == 1 else b"")
               for i in range(1, 6)]
    members += [("cifar-10-batches-bin/test_batch.bin", test),
                ("cifar-10-batches-bin/batches.meta.txt", "\n".join(names).encode())]
    _tar(mirror / "cifar-10-binary.tar.gz", members)
    blob = (mirror / "cifar-10-binary.tar.gz").read_bytes()
    spec = DatasetSpec("cifar10", (DataFile("cifar-10-binary.tar.gz", hashlib.sha256(blob).hexdigest(),
                                            len(blob), hashlib.md5(blob).hexdigest(),
                                            decompress=False),), urls=())
    monkeypatch.setitem(sources._CIFAR, "cifar10", (spec, *sources._CIFAR["cifar10"][1:]))
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    monkeypatch.setenv(OFFLINE_ENV, "1")
    raw = sources.load_source(DataConfig(source="cifar10"), tmp_path / "cache")
    assert raw.class_names == tuple(names) and raw.x_test.shape == (10, 32, 32, 3)
    np.testing.assert_array_equal(raw.x_train, images)
    np.testing.assert_array_equal(raw.y_train, labels)


def test_prepare_folder_writes_skipped_report_and_class_names(tmp_path, monkeypatch):
    from cnnzoo.config import DataConfig
    from cnnzoo.data.prepare import prepare

    root = tmp_path / "imgs"
    for c, cls in enumerate(("ant", "bee", "cow", "doe")):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            _image(root / cls / f"{i}.png", (40 * c, 10 * i, 0))
    (root / "bee" / "README.md").write_text("hi")
    monkeypatch.chdir(tmp_path)  # the project: params paths stay inside it
    cfg = DataConfig(source="folder", path="imgs", image_size=16, channels=1,
                     labels_per_class=2, b_pool_per_class=2, val_per_class=1, test_fraction=0.2)
    meta = prepare(cfg, seed=0, out_dir=tmp_path / "prepared", cache_dir=tmp_path / "cache")
    assert meta["task_a"]["names"] == ["ant", "cow"] and meta["task_b"]["names"] == ["bee", "doe"]
    assert meta["image_shape"] == [16, 16, 1] and meta["skipped"] == 1
    assert "README.md\tnot an image file (.md)" in (tmp_path / "prepared/skipped.txt").read_text()
    assert meta["counts"]["b_train"] == 4 and meta["counts"]["b_test"] == 2
    bad = cfg.model_copy(update={"b_pool_per_class": 10})
    with pytest.raises(ValueError, match="fewer training images"):
        prepare(bad, seed=0, out_dir=tmp_path / "prepared2", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "prepared2").exists()  # nothing partial on failure
