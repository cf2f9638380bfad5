"""`make docs-images`: the pictures of the README and docs/, taken from the last `make run` in
this checkout (never drawn by hand): the leaderboard figure, a first-layer filter grid, a
Grad-CAM sample, a reliability diagram, a float32/int8 disagreement grid, the robustness figure
once `make robustness` has run, and two MLflow UI screenshots (the runs table, a run's
visualisation artifacts), shrunk to small palette PNGs in docs/images/."""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
import tempfile
from pathlib import Path

from cnnzoo import logs

log = logging.getLogger(__name__)
OUT = Path("docs/images")
# picture in docs/images/ -> what the pipeline wrote.
FIGURES = {"leaderboard.png": "reports/leaderboard.png",
           "filters_lenet5.png": "plots/visualize/lenet5/filters.png",
           "gradcam_resnet20.png": "plots/visualize/resnet20/gradcam.png",
           "reliability_vgg11.png": "plots/reliability/vgg11.png",
           "disagreement_densenet_bc_100.png": "plots/export/densenet_bc_100_disagreement.png"}
# ... and those of the stages `make run` leaves out, when they have run.
OPTIONAL = {"robustness.png": "plots/robustness.png", "sweep.png": "plots/sweep.png"}
SCREENSHOTS = ("mlflow_runs.png", "mlflow_artifacts.png")


def shrink(src: Path, dst: Path, width: int = 1100, colors: int = 128) -> None:
    """At most `width` pixels wide, `colors` palette colours: screenshots of a few hundred KB
    become a few tens of KB, fit for a git repository."""
    from PIL import Image

    from cnnzoo.files import atomic_path

    img = Image.open(src).convert("RGB")
    if img.width > width:
        img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
    with atomic_path(dst) as tmp:
        img.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(tmp, format="PNG",
                                                                        optimize=True)


def screenshots(root: Path, shots: Path) -> None:
    from PIL import Image

    from cnnzoo.tracking import browser

    db = sqlite3.connect(f"file:{root / 'mlflow.db'}?mode=ro", uri=True)
    exp_id = db.execute("SELECT experiment_id FROM experiments WHERE name = 'cnnzoo'").fetchone()[0]
    visual = db.execute("SELECT run_uuid FROM runs WHERE name = 'visualize-resnet20' AND "
                        "status = 'FINISHED' ORDER BY start_time DESC").fetchone()[0]
    with browser.mlflow_ui(root / "mlflow.db", cwd=root) as url:
        ui = browser.Browser(url, shots, width=1400, height=820)
        try:
            ui.page(f"/experiments/{exp_id}/runs", "Run Name", "Dataset", "report",
                    shot="mlflow_runs.png")
            ui.page(f"/experiments/{exp_id}/runs/{visual}/artifacts/visualize/gradcam.png",
                    "gradcam.png", "filters.png")
            with Image.open(root / FIGURES["gradcam_resnet20.png"]) as shown:
                ui.shows_image(shown.width)
            ui.driver.save_screenshot(str(shots / "mlflow_artifacts.png"))
        finally:
            ui.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--root", type=Path, default=Path("."), help="a checkout after `make run`")
    args = p.parse_args(argv)
    logs.setup()
    root = args.root
    missing = [src for src in FIGURES.values() if not (root / src).is_file()]
    if missing or not (root / "mlflow.db").is_file():
        log.error("no finished `make run` here (missing: %s): run it first",
                  ", ".join(missing or ["mlflow.db"]))
        return 1
    from cnnzoo.tracking import browser

    if why := browser.missing_browser():
        log.error("cannot take the MLflow screenshots: %s", why)
        return 1
    optional = {n: src for n, src in OPTIONAL.items() if (root / src).is_file()}
    for name, src in {**FIGURES, **optional}.items():
        shrink(root / src, root / OUT / name)
    with tempfile.TemporaryDirectory() as tmp:
        screenshots(root, Path(tmp))
        for name in SCREENSHOTS:
            shrink(Path(tmp) / name, root / OUT / name)
    for name in (*FIGURES, *optional, *SCREENSHOTS):
        log.info("%s: %.0f KB", OUT / name, (root / OUT / name).stat().st_size / 1024)
    return 0


if __name__ == "__main__":
    sys.exit(main())
