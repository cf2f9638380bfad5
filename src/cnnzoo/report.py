"""The leaderboard across architectures, as Markdown and CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from cnnzoo.files import read_json, write_text

# (key, Markdown/CSV header, short header for the terminal)
COLUMNS = (
    ("arch", "architecture", "arch"),
    ("params", "params", "params"),
    ("macs", "MACs/image", "MACs"),
    ("keras_kb", "Keras size (KB)", "keras KB"),
    ("tflite_fp32_kb", "TFLite fp32 (KB)", "fp32 KB"),
    ("tflite_int8_kb", "TFLite int8 (KB)", "int8 KB"),
    ("acc_scratch", "acc scratch", "scratch"),
    ("acc_probe", "acc linear probe", "probe"),
    ("acc_keras", "acc fine-tuned", "fine-tuned"),
    ("gain", "transfer gain", "gain"),
    ("acc_fp32", "acc fp32", "acc fp32"),
    ("acc_int8", "acc int8", "acc int8"),
    ("int8_latency_ms", "int8 latency (ms)", "int8 ms"),
    ("augmentation", "augmentation (acc with / without)", "aug with/without"),
)


def collect(archs: list[str], metrics_dir: Path) -> list[dict]:
    """One row per architecture from the stages' metrics: evaluate (`<arch>.json`, the shipped
    model), export/, transfer/ (linear probe), scratch/ and augment_effect.json."""
    effect_path = metrics_dir / "augment_effect.json"
    effect = read_json(effect_path) if effect_path.is_file() else None
    rows = []
    for arch in archs:
        ev = read_json(metrics_dir / f"{arch}.json")
        ex = read_json(metrics_dir / "export" / f"{arch}.json")
        probe = read_json(metrics_dir / "transfer" / f"{arch}.json")["test_accuracy"]
        scratch = read_json(metrics_dir / "scratch" / f"{arch}.json")["test_accuracy"]
        rows.append({
            "arch": arch,
            "params": ev["params"],
            "macs": ev["macs"],
            "keras_kb": round(ev["model_bytes"] / 1024, 1),
            "tflite_fp32_kb": round(ex["float32"]["size_bytes"] / 1024, 1),
            "tflite_int8_kb": round(ex["int8"]["size_bytes"] / 1024, 1),
            "acc_scratch": round(scratch, 4),
            "acc_probe": round(probe, 4),
            "acc_keras": round(ev["accuracy"], 4),
            "gain": f"{ev['accuracy'] - scratch:+.4f}",
            "acc_fp32": round(ex["float32"]["accuracy"], 4),
            "acc_int8": round(ex["int8"]["accuracy"], 4),
            "int8_latency_ms": round(ex["int8"]["latency_ms"], 3),
            "augmentation": (f"{effect['accuracy_with']:.4f} / {effect['accuracy_without']:.4f}"
                             if effect and effect["arch"] == arch else ""),
        })
    return rows


def _cell(key: str, value) -> str:
    if key in ("params", "macs") and str(value).isdigit():
        return f"{int(value):,}"
    return str(value)


def to_markdown(rows: list[dict], title: str) -> str:
    head = "| " + " | ".join(label for _, label, _ in COLUMNS) + " |"
    rule = "|" + "|".join(["---"] + ["---:"] * (len(COLUMNS) - 1)) + "|"
    body = ["| " + " | ".join(_cell(k, r[k]) for k, *_ in COLUMNS) + " |" for r in rows]
    return "\n".join([f"# {title}", "", head, rule, *body, ""])


def to_text(rows: list[dict]) -> str:
    """An aligned plain-text table for the terminal (rows as collected, or read back from CSV)."""
    cells = [[short for *_, short in COLUMNS]]
    cells += [[_cell(k, r.get(k, "")) for k, *_ in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[k for k, *_ in COLUMNS], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_report(rows: list[dict], md_path: Path, csv_path: Path, title: str) -> None:
    write_text(md_path, to_markdown(rows, title))
    write_text(csv_path, to_csv(rows))
