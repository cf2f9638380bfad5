"""The robustness table (stages/robust.py measures it): CSV, Markdown, the per-corruption figure,
and what the report takes from it (mCA per family, when the CSV is there and is of the same
int8 files)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cnnzoo.files import csv_text, read_csv, write_text
from cnnzoo.tasks.corruptions import CORRUPTIONS

FIELDS = ("arch", "int8_kb", "keras_clean", "keras_mca", "keras_mca_low", "keras_mca_high",
          "int8_clean", "int8_mca", "int8_mca_low", "int8_mca_high",
          *(f"keras_{c}" for c in CORRUPTIONS), *(f"int8_{c}" for c in CORRUPTIONS),
          "int8_sha256")


def row(arch: str, found: dict, int8_bytes: int, int8_sha256: str) -> dict:
    out = {"arch": arch, "int8_kb": round(int8_bytes / 1024, 1), "int8_sha256": int8_sha256}
    for model, r in found.items():
        out.update({f"{model}_clean": round(r["clean_accuracy"], 4),
                    f"{model}_mca": round(r["mca"], 4),
                    f"{model}_mca_low": round(r["mca_ci"][0], 4),
                    f"{model}_mca_high": round(r["mca_ci"][1], 4),
                    **{f"{model}_{c}": round(v, 4) for c, v in r["corruptions"].items()}})
    return out


def most_robust_per_kb(rows: list[dict], tolerance: float = 0.01) -> dict:
    """The smallest int8 file whose int8 mCA is within `tolerance` of the best int8 mCA."""
    best = max(float(r["int8_mca"]) for r in rows)
    near = [r for r in rows if float(r["int8_mca"]) >= best - tolerance]
    return min(near, key=lambda r: (float(r["int8_kb"]), -float(r["int8_mca"])))


def to_markdown(rows: list[dict], images: int | None = None) -> str:
    names = list(CORRUPTIONS)
    lines = ["| architecture | int8 KB | clean Keras / int8 | mCA Keras | mCA int8 | "
             + " | ".join(names) + " |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(names)]
    for r in rows:
        lines.append(
            f"| {r['arch']} | {r['int8_kb']} | {float(r['keras_clean']):.4f} / "
            f"{float(r['int8_clean']):.4f} | {_ci(r, 'keras_mca')} | {_ci(r, 'int8_mca')} | "
            + " | ".join(f"{float(r[f'keras_{c}']):.3f}" for c in names) + " |")
    pick = most_robust_per_kb(rows)
    top = max(rows, key=lambda r: float(r["int8_mca"]))
    lines += ["", f"Per corruption: the Keras model's accuracy, mean over three severities"
              f"{f' ({images} test images each)' if images else ''}. mCA: mean over the 11 "
              "corruptions × 3 severities, ± half its 95% interval over test images.", "",
              f"Most robust int8 model: **{top['arch']}** (mCA {float(top['int8_mca']):.4f}); "
              f"most robust per KB: **{pick['arch']}**, the smallest int8 file "
              f"({pick['int8_kb']} KB) within one point of it (mCA {float(pick['int8_mca']):.4f})."]
    return "\n".join(lines) + "\n"


def _ci(r: dict, key: str) -> str:
    return f"{float(r[key]):.4f} ±{(float(r[key + '_high']) - float(r[key + '_low'])) / 2:.4f}"


def write(rows: list[dict], csv_path: str | Path, md_path: str | Path, images: int) -> None:
    write_text(csv_path, csv_text(rows, FIELDS))
    write_text(md_path, f"# Robustness to corruptions ({len(rows)} families)\n\n"
               f"{to_markdown(rows, images)}")


def figure(rows: list[dict], path: str | Path) -> None:
    """Accuracy per corruption (mean over severities), one line per family, Keras solid and
    int8 dashed."""
    from cnnzoo.reporting.figures import plt, save_figure

    names = list(CORRUPTIONS)
    fig, ax = plt.subplots(figsize=(10, 5))
    colours = plt.get_cmap("tab10")
    for i, r in enumerate(rows):
        ax.plot(names, [float(r[f"keras_{c}"]) for c in names], "-o", markersize=3,
                color=colours(i % 10), label=f"{r['arch']} (mCA {float(r['keras_mca']):.3f})")
        ax.plot(names, [float(r[f"int8_{c}"]) for c in names], "--", linewidth=0.8,
                color=colours(i % 10))
    ax.set_ylabel("test accuracy, mean over 3 severities")
    ax.set_ylim(0, 1)
    ax.grid(True, alpha=0.3)
    ax.set_title("Accuracy under corruption (solid: Keras, dashed: int8 TFLite)", fontsize=10)
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    save_figure(fig, path)


def for_report(csv_path: Path, exports: Path) -> dict[str, dict]:
    """Per family, its robustness row, if the CSV exists and measured the int8 file now in
    `exports` (a CSV from other models is left out, not shown as this run's)."""
    if not csv_path.is_file():
        return {}
    out = {}
    for r in read_csv(csv_path):
        f = exports / r["arch"] / f"{r['arch']}_int8.tflite"
        if f.is_file() and hashlib.sha256(f.read_bytes()).hexdigest() == r["int8_sha256"]:
            out[r["arch"]] = r
    return out


def mca_columns(rows: list[dict], found: dict[str, dict]) -> None:
    """Adds `mca_keras` / `mca_int8` (with their intervals) to the leaderboard's rows."""
    for r in rows:
        if (got := found.get(r["arch"])) is not None:
            for model in ("keras", "int8"):
                r[f"mca_{model}"] = float(got[f"{model}_mca"])
                r[f"mca_{model}_low"] = float(got[f"{model}_mca_low"])
                r[f"mca_{model}_high"] = float(got[f"{model}_mca_high"])


def robustness_markdown(found: dict[str, dict], archs: list[str]) -> str:
    """The report's section: the table of the families measured, or how to measure them."""
    head = "## Robustness to corruptions"
    rows = [found[a] for a in archs if a in found]
    if not rows:
        return (f"{head}\n\nNot measured for these models yet: `make robustness` (a cached DVC "
                "stage, minutes) adds mean corruption accuracy (mCA) to the leaderboard and this "
                "section.\n")
    missing = [a for a in archs if a not in found]
    note = (f"\n{', '.join(missing)}: not measured for this run's int8 files (`make "
            "robustness`).\n" if missing else "")
    return f"{head}\n\n{to_markdown(rows)}{note}"
