"""The report's int8 section: per family, the layer the quantization debugger found worst, the
repair the export stage made (if any), and where float32 and int8 disagree on the test split."""

from __future__ import annotations

import os
from pathlib import Path

from cnnzoo.files import read_json


def int8_rows(archs: list[str], metrics_dir: Path) -> list[dict]:
    rows = []
    for arch in archs:
        int8 = read_json(metrics_dir / "export" / f"{arch}.json")
        layers, worst, repair = int8["int8"]["layers"], int8["int8"]["worst_layer"], \
            int8["int8"]["repair"]
        d = int8["disagreement"]
        rows.append({
            "arch": arch,
            "worst": f"{worst['layer']} ({worst['op']}) {worst['rmse_scale']:.2f}",
            "over": f"{sum(e['rmse_scale'] > 1 for e in layers)} of {len(layers)}",
            "repair": _repair_text(repair),
            "disagree": f"{d['count']} ({d['float_right']} / {d['int8_right']})",
            "margin": (f"{d['median_float_margin']:.2f} vs {d['median_float_margin_all']:.2f}"
                       if d["count"] else "–"),
            "ece": (f"{int8['int8']['ece']:.4f} → {int8['int8']['ece_scaled']:.4f}"
                    if "ece" in int8["int8"] else "–"),
        })
    return rows


def repaired(repair: dict | None) -> bool:
    """Whether the export's int8 repair (`int8.repair` of its metrics) replaced the file."""
    return bool(repair) and bool(repair.get("float_layers") or repair.get("activations") == "int16")


def change_text(repair: dict | None) -> str:
    """What the export's int8 repair changed, in words."""
    if repair is None:
        return "not needed"
    if repair.get("float_layers"):
        return ", ".join(repair["float_layers"]) + " in float"
    if repair.get("activations") == "int16":
        return "int16 activations"
    return f"failed after {len(repair['tried'])} tries"


def _repair_text(repair: dict | None) -> str:
    if not repaired(repair):
        return change_text(repair)
    before = repair["unrepaired"]
    cost = min(repair["latency_cost_ms"].items())  # the fewest threads' median comes first
    return (f"{change_text(repair)}: acc {before['accuracy']:.4f} → "
            f"within the gate, {repair['size_cost_bytes'] / 1024:+.1f} KB, "
            f"{cost[1]:+.3f} ms ({cost[0].replace('_', ' ')})")


def int8_markdown(archs: list[str], metrics_dir: Path, plots_dir: Path, md_path: Path) -> str:
    """Markdown: the table, which families needed a repair, and the disagreement grids."""
    rows = int8_rows(archs, metrics_dir)
    repaired = [r["arch"] for r in rows if r["repair"] != "not needed"]
    lines = ["## Where int8 loses (quantization debugger)", "",
             "Per layer, the RMSE between the int8 op and its float twin fed the same input, in "
             "units of the output's quantization step (rounding alone: 0.29), on the calibration "
             "images. A family whose int8 file fails the parity gate is retried with its worst "
             "layers (and the layers feeding them) in float, then its first layers, smallest "
             "change first, and last with 16-bit activations. Disagreements: "
             "test images where the float32 and int8 files predict different classes (float32 "
             "right / int8 right); margin: float32's top-1 minus top-2 probability there, "
             "against its median over all test images. ECE: the int8 file's expected "
             "calibration error (15 bins) before → after the Keras model's temperature.", "",
             "| architecture | worst int8 layer (op) RMSE/scale | layers > 1 step | repair | "
             "disagreements (fp32 / int8 right) | median margin there vs all | int8 ECE |",
             "|---|---|---:|---|---:|---:|---:|"]
    lines += [f"| {r['arch']} | {r['worst']} | {r['over']} | {r['repair']} | {r['disagree']} | "
              f"{r['margin']} | {r['ece']} |" for r in rows]
    lines += ["", ("Repaired: " + ", ".join(repaired) + ".") if repaired else
              "No family needed a repair: every int8 file passed the gate as converted."]
    grids = [(a, plots_dir / f"{a}_disagreement.png") for a in archs]
    links = [f"[{a}]({Path(os.path.relpath(p, md_path.parent)).as_posix()})"
             for a, p in grids if p.is_file()]
    if links:
        lines += ["", "The disagreeing images, smallest float32 margin first: " + ", ".join(links)
                  + "."]
    return "\n".join(lines + [""])
