import gzip

import pytest

from cnnzoo.data.fetch import (
    FASHION_MNIST,
    MIRROR_ENV,
    OFFLINE_ENV,
    DataUnavailableError,
    default_sources,
    fetch,
    verify,
)


def test_fetch_from_folder_decompresses_and_verifies(idx_dataset, tmp_path):
    folder, spec = idx_dataset
    dest = fetch(spec, tmp_path / "cache", sources=[str(folder)])
    for f in spec.files:
        assert (dest / f.name).stat().st_size == f.size


def test_fetch_over_loopback_http_skips_missing_source(idx_dataset, tmp_path, http_server):
    folder, spec = idx_dataset
    url = http_server(folder)
    dest = fetch(spec, tmp_path / "cache", sources=[str(tmp_path / "nowhere"), url])
    assert sorted(p.name for p in dest.iterdir()) == sorted(f.name for f in spec.files)


def test_checksum_mismatch_names_file_and_both_hashes_and_leaves_nothing(
        idx_dataset, tmp_path, http_server):
    folder, spec = idx_dataset
    bad = spec.files[0]
    corrupt = bytearray(gzip.decompress((folder / f"{bad.name}.gz").read_bytes()))
    corrupt[-1] ^= 0xFF
    (folder / f"{bad.name}.gz").write_bytes(gzip.compress(bytes(corrupt)))
    dest = tmp_path / "cache"
    with pytest.raises(DataUnavailableError) as err:
        fetch(spec, dest, sources=[http_server(folder)])
    msg = str(err.value)
    assert bad.name in msg and bad.sha256 in msg and "checksum mismatch" in msg
    import hashlib
    assert hashlib.sha256(bytes(corrupt)).hexdigest() in msg
    assert not dest.exists() or not any(dest.iterdir())  # no partial or temp file


def test_no_source_lists_the_three_ways(tmp_path, monkeypatch):
    monkeypatch.setenv(OFFLINE_ENV, "1")
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    spec = FASHION_MNIST.__class__(**{**FASHION_MNIST.__dict__,
                                      "system_dir": str(tmp_path / "no-package")})
    with pytest.raises(DataUnavailableError) as err:
        fetch(spec, tmp_path / "cache")
    msg = str(err.value)
    assert MIRROR_ENV in msg and "apt-get install dataset-fashion-mnist" in msg
    assert "network access" in msg


def test_default_sources_order(monkeypatch, tmp_path):
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path))
    monkeypatch.delenv(OFFLINE_ENV, raising=False)
    sources = default_sources(FASHION_MNIST)
    assert sources[0] == str(tmp_path) and sources[1] == FASHION_MNIST.system_dir
    assert sources[2:] == list(FASHION_MNIST.urls)


def test_fallback_after_a_corrupt_mirror_warns_with_source_file_and_both_hashes(
        idx_dataset, tmp_path, http_server, caplog):
    folder, spec = idx_dataset
    bad = spec.files[1]
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for f in spec.files:  # the mirror holds every file, one of them corrupt
        raw = gzip.decompress((folder / f"{f.name}.gz").read_bytes())
        if f is bad:
            raw = raw[:-1] + bytes([raw[-1] ^ 0xFF])
        (mirror / f.name).write_bytes(raw)
    import hashlib
    got = hashlib.sha256((mirror / bad.name).read_bytes()).hexdigest()
    url = http_server(folder)
    with caplog.at_level("WARNING", logger="cnnzoo.data.fetch"):
        dest = fetch(spec, tmp_path / "cache", sources=[str(mirror), url])
    for f in spec.files:  # the good copy came from the later source
        verify((dest / f.name).read_bytes(), f, "test")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings
    line = warnings[0]
    assert "\n" not in line and str(mirror) in line and bad.name in line
    assert bad.sha256 in line and got in line
