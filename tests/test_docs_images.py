"""`make docs-images` (cnnzoo.reporting.docs_images): refuses without a finished run, and shrinks what it
copies to small palette PNGs."""

import numpy as np
from PIL import Image

from cnnzoo.reporting import docs_images


def test_without_a_run_it_says_so_and_writes_nothing(tmp_path, caplog):
    assert docs_images.main(["--root", str(tmp_path)]) == 1
    assert "run it first" in caplog.text and "reports/leaderboard.png" in caplog.text
    assert not (tmp_path / "docs").exists()


def test_shrink_keeps_the_aspect_and_makes_a_small_palette_png(tmp_path):
    rng = np.random.default_rng(0)
    big = np.kron(rng.integers(0, 255, (50, 80, 3), dtype=np.uint8), np.ones((20, 20, 1), np.uint8))
    Image.fromarray(big).save(tmp_path / "big.png")  # 1600 x 1000
    docs_images.shrink(tmp_path / "big.png", tmp_path / "out" / "small.png", width=800, colors=64)
    with Image.open(tmp_path / "out" / "small.png") as small:
        assert small.size == (800, 500) and small.mode == "P"
        assert len(small.getcolors()) <= 64
    assert (tmp_path / "out" / "small.png").stat().st_size < (tmp_path / "big.png").stat().st_size
