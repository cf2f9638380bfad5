"""The deployment-size table (deploy/sizes.py measures it): CSV, Markdown for the report, text for
the terminal, and the lecture's comparison in one line."""

from __future__ import annotations

from pathlib import Path

from cnnzoo.files import csv_text, write_text

FIELDS = ("model", "params", "keras_mb", "float32_mb", "float16_mb", "int8_mb", "lecture_mb")


def to_csv(rows: list[dict]) -> str:
    return csv_text(rows, FIELDS)


def headline(rows: list[dict]) -> str | None:
    """The lecture's comparison in one ratio: VGG-16 float32 over MobileNetV2 int8."""
    by = {r["model"]: r for r in rows}
    if "vgg16" in by and "mobilenet_v2" in by:
        ratio = float(by["vgg16"]["float32_mb"]) / float(by["mobilenet_v2"]["int8_mb"])
        return (f"VGG-16 float32 ({float(by['vgg16']['float32_mb']):.1f} MB) is {ratio:.0f}× "
                f"MobileNet V2 int8 ({float(by['mobilenet_v2']['int8_mb']):.2f} MB).")
    return None


def to_markdown(rows: list[dict]) -> str:
    lines = ["| model | params | Keras file (MB) | TFLite float32 (MB) | TFLite float16 (MB) | "
             "TFLite int8 (MB) | lecture (MB) |", "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['model']} | {int(r['params']):,} | {r['keras_mb']} | {r['float32_mb']} | "
              f"{r['float16_mb']} | {r['int8_mb']} | {r['lecture_mb'] or '—'} |" for r in rows]
    lines += ["", "Random weights (a file's size does not depend on the values); int8 is "
              "full-integer with per-channel scales. MB = 2^20 bytes."]
    if line := headline(rows):
        lines += ["", line]
    return "\n".join(lines) + "\n"


def to_text(rows: list[dict]) -> str:
    cells = [["model", "params", "keras MB", "fp32 MB", "fp16 MB", "int8 MB", "lecture MB"]]
    cells += [[r["model"], f"{int(r['params']):,}", *(str(r[k]) for k in FIELDS[2:6]),
               r["lecture_mb"] or "-"] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
    text = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                      enumerate(zip(row, widths, strict=True))) for row in cells]
    if line := headline(rows):
        text += ["", line]
    return "\n".join(text)


def write(rows: list[dict], csv_path: str | Path, md_path: str | Path) -> None:
    write_text(csv_path, to_csv(rows))
    write_text(md_path, f"# Deployment sizes ({len(rows)} networks)\n\n{to_markdown(rows)}")
