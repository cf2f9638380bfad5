"""The report: the leaderboard across architectures (Markdown and CSV), the mobile-export
table of every TFLite variant, segmentation, detection and verification, and the canonical
deployment sizes when `make sizes` has run."""

from __future__ import annotations

import os
from pathlib import Path

from cnnzoo.files import csv_text, read_csv, read_json, write_text

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
    ("ece", "ECE fine-tuned", "ECE"),
    ("temperature", "temperature T (fitted on val)", "T"),
    ("ece_scaled", "ECE at T", "ECE@T"),
    ("mca_keras", "mCA Keras", "mCA"),
    ("mca_int8", "mCA int8", "mCA int8"),
    ("augmentation", "augmentation (acc with / without)", "aug with/without"),
)


# The columns that carry a 95% interval (`<key>_low`, `<key>_high` in the rows and the CSV):
# accuracies as value ± half its bootstrap interval, the transfer gain as its paired interval.
INTERVALS = ("acc_scratch", "acc_probe", "acc_keras", "gain", "acc_fp32", "acc_int8", "ece",
             "ece_scaled", "mca_keras", "mca_int8")


def _bounds(key: str, ci: list[float] | None) -> dict:
    return {} if ci is None else {f"{key}_low": round(ci[0], 4), f"{key}_high": round(ci[1], 4)}


def _gain_interval(ev: dict, scratch: dict) -> list[float] | None:
    """The fine-tuned model's gain over scratch, paired on the same test images."""
    from cnnzoo.tasks.intervals import paired_interval, unpack

    if "accuracy_correct" not in ev or "test_accuracy_correct" not in scratch:
        return None  # metrics from before per-image results were recorded
    return paired_interval(unpack(ev["accuracy_correct"]), unpack(scratch["test_accuracy_correct"]))


def collect(archs: list[str], metrics_dir: Path) -> list[dict]:
    """One row per architecture from the stages' metrics: evaluate (`<arch>.json`, the shipped
    model), export/, transfer/ (linear probe), scratch/ and augment_effect.json; every accuracy
    with its 95% interval (`INTERVALS`)."""
    effect_path = metrics_dir / "augment_effect.json"
    effect = read_json(effect_path) if effect_path.is_file() else None
    rows = []
    for arch in archs:
        ev = read_json(metrics_dir / f"{arch}.json")
        ex = read_json(metrics_dir / "export" / f"{arch}.json")
        probe_run = read_json(metrics_dir / "transfer" / f"{arch}.json")
        scratch_run = read_json(metrics_dir / "scratch" / f"{arch}.json")
        probe, scratch = probe_run["test_accuracy"], scratch_run["test_accuracy"]
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
            "int8_latency_ms": round(_latency(ex["int8"], "median_ms"), 3),
            # Metrics from before calibration was measured have no ECE: blank cells.
            **({"ece": round(ev["ece"], 4), "temperature": round(ev["temperature"], 3),
                "ece_scaled": round(ev["ece_scaled"], 4)} if "ece" in ev else {}),
            "augmentation": _augmentation(effect) if effect and effect["arch"] == arch else "",
            **_bounds("acc_scratch", scratch_run.get("test_accuracy_ci")),
            **_bounds("acc_probe", probe_run.get("test_accuracy_ci")),
            **_bounds("acc_keras", ev.get("accuracy_ci")),
            **_bounds("gain", _gain_interval(ev, scratch_run)),
            **_bounds("acc_fp32", ex["float32"].get("accuracy_ci")),
            **_bounds("acc_int8", ex["int8"].get("accuracy_ci")),
            **_bounds("ece", ev.get("ece_ci")),
            **_bounds("ece_scaled", ev.get("ece_scaled_ci")),
        })
    return rows


def _augmentation(effect: dict) -> str:
    cell = f"{effect['accuracy_with']:.4f} / {effect['accuracy_without']:.4f}"
    if "delta_ci" in effect:
        low, high = effect["delta_ci"]
        cell += f" ({effect['delta']:+.4f} [{low:+.4f}, {high:+.4f}])"
    return cell


def _latency(variant: dict, stat: str, threads: int | None = None) -> float:
    """A variant's latency `stat` at `threads` (default: the fewest threads measured)."""
    found = {int(k.split("t_")[0]): v for k, v in variant["latency"].items() if k.endswith(stat)}
    return found[threads if threads is not None else min(found)]


def mobile_rows(archs: list[str], metrics_dir: Path) -> list[dict]:
    """One row per (architecture, TFLite variant or ONNX) from the export stage's metrics."""
    from cnnzoo.deploy.convert import VARIANTS

    rows = []
    for arch in archs:
        ex = read_json(metrics_dir / "export" / f"{arch}.json")
        for variant in (v for v in (*VARIANTS, "onnx") if v in ex):
            v = ex[variant]
            threads = sorted({int(k.split("t_")[0]) for k in v["latency"]})
            ops = v.get("float_ops", {})
            rows.append({
                "arch": arch, "variant": variant, "kb": round(v["size_bytes"] / 1024, 1),
                "keras": f"{ex['keras_accuracy']:.4f}", "accuracy": f"{v['accuracy']:.4f}",
                "drop": f"{v['drop']:+.4f}",
                "latency": " / ".join(f"{_latency(v, 'median_ms', t):.3f} ({_latency(v, 'p90_ms', t):.3f})"
                                      for t in threads),
                "threads": "/".join(map(str, threads)),
                "notes": (f"{ex['int8_scales'].replace('_', '-')} scales; "
                          + (f"float ops: {', '.join(f'{k}×{n}' for k, n in ops.items())}"
                             if ops else "integer-only")) if variant == "int8" else
                         "onnxruntime, CPU" if variant == "onnx" else "",
            })
    return rows


def pick_mobile(archs: list[str], metrics_dir: Path, tolerance: float) -> str:
    """The model to ship to phones: the smallest int8 file among those whose int8 test accuracy
    is within `tolerance` of the best int8 accuracy, among the families whose files all passed
    the parity gate (with `export.enforce_gate: false` some may not have)."""
    exports = {a: read_json(metrics_dir / "export" / f"{a}.json") for a in archs}
    passed = [a for a in archs if not exports[a].get("gate_failures")]
    if not passed:
        raise ValueError("no family's export passed the parity gate (export.enforce_gate is "
                         "false): nothing to pick for phones")
    int8 = {a: exports[a]["int8"] for a in passed}
    best = max(v["accuracy"] for v in int8.values())
    near = [a for a in passed if int8[a]["accuracy"] >= best - tolerance]
    return min(near, key=lambda a: (int8[a]["size_bytes"], -int8[a]["accuracy"]))


def mobile_markdown(rows: list[dict], pick: str | None, version: str | None = None) -> str:
    threads = rows[0]["threads"] if rows else "1"
    lines = ["## Mobile export (TFLite through LiteRT; ONNX through onnxruntime)", "",
             "Every variant evaluated on the whole test split; latency is batch-1 `invoke()` "
             f"with XNNPACK on the **host CPU (not a phone)**, median (p90) in ms at {threads} "
             "thread(s), warm-up excluded.", "",
             "| architecture | variant | size (KB) | acc Keras | acc TFLite | drop | latency ms "
             f"at {threads} threads, median (p90) | int8 notes |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    lines += [f"| {r['arch']} | {r['variant']} | {r['kb']} | {r['keras']} | {r['accuracy']} | "
              f"{r['drop']} | {r['latency']} | {r['notes']} |" for r in rows]
    if pick and version:
        lines += ["", f"Registered in MLflow as `models:/cnnzoo-mobile@mobile`: **{pick}** (the "
                  "smallest int8 file within the parity tolerance of the best int8 accuracy)."]
    elif pick:
        lines += ["", f"The pick: **{pick}** (the smallest int8 file within the parity tolerance "
                  "of the best int8 accuracy). Not registered: this is not the committed default "
                  f"run, so `@mobile` did not move; `cnnzoo promote {pick}` ships it."]
    return "\n".join(lines + [""])


def sizes_markdown(sizes_csv: Path) -> str:
    head = "## Deployment sizes of the canonical networks"
    if not sizes_csv.is_file():
        return (f"{head}\n\nNot computed yet: `make sizes` (the cached DVC stage `sizes`, "
                "minutes on a CPU) adds the canonical 224×224 table here.\n")
    from cnnzoo.reporting.sizes_table import to_markdown

    return f"{head}\n\n{to_markdown(read_csv(sizes_csv))}"


def _optional(path: Path) -> dict | None:
    return read_json(path) if path.is_file() else None


def classifier_data(archs: list[str], metrics_dir: Path) -> dict | None:
    """The data the classifiers were evaluated on (evaluate's metrics record it)."""
    return (_optional(metrics_dir / f"{archs[0]}.json") or {}).get("data")


def same_data(record: dict | None, reference: dict | None) -> bool:
    """Whether a pipeline's results come from the classifiers' data: the same splits, or scenes
    cut from the same source."""
    if not record or not reference:
        return False
    if record["source"].startswith("scenes of "):
        return record["source"] == f"scenes of {reference['source']}"
    return record.get("digest") == reference.get("digest")


def data_line(record: dict | None, reference: dict | None = None) -> str:
    """The line under each section's title that names its data; results from other data than the
    classifiers' (`reference`) are marked, never passed off as the same run's."""
    named = (f"`{record['source']}` (digest `{record.get('digest')}`)" if record else
             "not recorded (metrics from before data digests)")
    if reference is None or same_data(record, reference):
        return f"Data: {named}."
    return (f"**Other data than the classifiers'**: {named}, while the classifiers used "
            f"`{reference['source']}` (digest `{reference.get('digest')}`). Rerun this "
            "pipeline on the classifiers' data to compare them.")


def with_interval(value: float, ci: list[float] | None, digits: int = 4) -> str:
    """`value` and its 95% interval as printed in the report and the terminal summary."""
    if ci is None:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _variants_table(ex: dict, metric: str, label: str) -> list[str]:
    """Markdown rows of an export stage's TFLite variants: size, `metric` and its drop."""
    variants = [v for v in ("float32", "float16", "dynamic_int8", "int8") if v in ex]
    if not variants:
        return []
    return [f"| TFLite variant | size (KB) | {label} | drop |", "|---|---:|---:|---:|",
            *(f"| {v} | {ex[v]['size_bytes'] / 1024:.1f} | {ex[v][metric]:.4f} | "
              f"{ex[v]['drop']:+.4f} |" for v in variants)]


def segmentation_markdown(metrics_dir: Path, reference: dict | None = None) -> str:
    test = _optional(metrics_dir / "segment" / "test.json")
    if test is None:
        return ""
    ex = _optional(metrics_dir / "segment" / "export.json") or {}
    ious = ", ".join(f"{name} {v:.3f}" if v is not None else f"{name} n/a"
                     for name, v in zip(test["classes"], test["iou"], strict=True))
    lines = ["## Segmentation (U-Net, test scenes)", "", data_line(test.get("data"), reference), "",
             f"Mean IoU **{with_interval(test['mean_iou'], test.get('mean_iou_ci'))}** (95% "
             f"interval, bootstrap over scenes), pixel accuracy {test['pixel_accuracy']:.4f} "
             f"on {test['test_scenes']} scenes ({test['params']:,} parameters). Per-class IoU: "
             f"{ious}.", ""]
    return "\n".join(lines + _variants_table(ex, "mean_iou", "mean IoU") + [""])


def detection_markdown(metrics_dir: Path, reference: dict | None = None) -> str:
    test = _optional(metrics_dir / "detect" / "test.json")
    if test is None:
        return ""
    train = _optional(metrics_dir / "detect" / "train.json") or {}
    ex = _optional(metrics_dir / "detect" / "export.json") or {}
    aps = ", ".join(f"{name} {v:.3f}" if v is not None else f"{name} n/a"
                    for name, v in zip(test["classes"], test["ap50"], strict=True))
    lines = ["## Detection (YOLO v1-style, test scenes)", "", data_line(test.get("data"), reference),
             "", f"mAP@0.5 **{with_interval(test['map50'], test.get('map50_ci'))}** (95% "
             f"interval, bootstrap over scenes) on {test['test_scenes']} scenes "
             f"({test['test_boxes']} boxes; {test['params']:,} parameters"
             + (f"; validation {train['val_map50']:.4f}" if "val_map50" in train else "")
             + f"). Per-class AP@0.5: {aps}.", ""]
    return "\n".join(lines + _variants_table(ex, "map50", "mAP@0.5") + [""])


VERIFY_METHODS = (("triplet", "Siamese embedding (triplet loss)"),
                  ("binary", "Siamese binary (weighted |f1 - f2|)"),
                  ("raw_pixels", "raw-pixel L2 (baseline)"))


def verification_markdown(metrics_dir: Path, reference: dict | None = None) -> str:
    test = _optional(metrics_dir / "verify" / "test.json")
    if test is None:
        return ""
    lines = ["## Verification (one-shot, task B's classes never seen in training)", "",
             data_line(test.get("data"), reference), "",
             f"{test['test_images']} test images of {', '.join(test['classes'])}: "
             f"{test['pairs']:,} pairs, {test['genuine_pairs']:,} genuine. Threshold chosen on "
             "the validation split; accuracy is balanced (mean of genuine and impostor pairs). "
             "In brackets: 95% intervals, bootstrap over the test images (every pair of a "
             "resample's images).", "",
             "| method | ROC AUC | EER | TAR @ FAR 1e-2 | TAR @ FAR 1e-3 | accuracy | "
             "one-shot identification |", "|---|---:|---:|---:|---:|---:|---:|"]
    for key, name in VERIFY_METHODS:
        r = test[key]
        cells = [with_interval(r[m], r.get(f"{m}_ci"), 3) for m in
                 ("auc", "eer", "tar_at_far_0.01", "tar_at_far_0.001")]
        lines.append(f"| {name} | {' | '.join(cells)} | {r['verification_accuracy']:.3f} | "
                     f"{with_interval(r['one_shot_accuracy'], r.get('one_shot_accuracy_ci'), 3)} |")
    gains = [(name, test[key]["auc"] - test["raw_pixels"]["auc"], test[key]["auc_over_raw_pixels_ci"])
             for key, name in VERIFY_METHODS if "auc_over_raw_pixels_ci" in test[key]]
    if gains:
        lines += ["", "AUC over raw pixels, paired on the same resampled images: " + "; ".join(
            f"{name} {gain:+.4f} [{ci[0]:+.4f}, {ci[1]:+.4f}]" for name, gain, ci in gains) + "."]
    ex = _optional(metrics_dir / "verify" / "export.json")
    if ex:
        lines += ["", "Embedding as TFLite: " + ", ".join(
            f"{v} {ex[v]['size_bytes'] / 1024:.1f} KB, AUC {ex[v]['auc']:.4f}"
            for v in ("float32", "int8") if v in ex) + f" (Keras {ex['keras_auc']:.4f})."]
    return "\n".join(lines + [""])


PIPELINES = ("classify", "segment", "detect", "verify")


def headline(rows: list[dict], metrics_dir: Path, pipelines: list[str]) -> dict:
    """reports/headline.json, the project's one DVC metrics file: what people compare across
    runs (`dvc metrics show`, `dvc exp show`, `dvc metrics diff`), short keys for narrow columns.
    Per architecture: fine-tuned, from-scratch and int8 TFLite test accuracy; per pipeline that
    ran: its headline."""
    out: dict = {r["arch"]: {"acc": float(r["acc_keras"]), "scratch": float(r["acc_scratch"]),
                             "int8": float(r["acc_int8"])} for r in rows}
    if "segment" in pipelines and (seg := _optional(metrics_dir / "segment" / "test.json")):
        out["segment"] = {"miou": round(seg["mean_iou"], 4)}
    if "detect" in pipelines and (found := _optional(metrics_dir / "detect" / "test.json")):
        out["detect"] = {"map50": round(found["map50"], 4)}
    if "verify" in pipelines and (ver := _optional(metrics_dir / "verify" / "test.json")):
        out["verify"] = {"auc": round(ver["triplet"]["auc"], 4)}
    return out


def headlines(metrics_dir: Path, pipelines: list[str] | tuple[str, ...] = PIPELINES) -> list[str]:
    """One line each for the segmentation, detection and verification pipelines that ran, for
    the terminal summary (the metrics folder may hold an earlier run's other pipelines)."""
    lines = []
    if "segment" in pipelines and (seg := _optional(metrics_dir / "segment" / "test.json")):
        lines.append("Segmentation (U-Net, test scenes): mean IoU "
                     f"{with_interval(seg['mean_iou'], seg.get('mean_iou_ci'))}, "
                     f"pixel accuracy {seg['pixel_accuracy']:.4f}")
    if "detect" in pipelines and (found := _optional(metrics_dir / "detect" / "test.json")):
        lines.append("Detection (YOLO v1-style, test scenes): mAP@0.5 "
                     f"{with_interval(found['map50'], found.get('map50_ci'))}")
    if "verify" in pipelines and (ver := _optional(metrics_dir / "verify" / "test.json")):
        t, raw = ver["triplet"], ver["raw_pixels"]
        lines.append(f"Verification on unseen classes: AUC {with_interval(t['auc'], t.get('auc_ci'))} "
                     f"(raw pixels {with_interval(raw['auc'], raw.get('auc_ci'))}), EER "
                     f"{t['eer']:.4f} (raw pixels {raw['eer']:.4f}), one-shot accuracy "
                     f"{t['one_shot_accuracy']:.4f} (raw pixels {raw['one_shot_accuracy']:.4f})")
    return lines


def interval_cell(row: dict, key: str, digits: int = 4, sign: bool = False) -> str:
    """`row[key]` with its 95% interval from `<key>_low`/`<key>_high` (rows as collected or read
    back from CSV): ± half of it for an accuracy, the bounds for a difference (`sign`), whose
    sign is the point."""
    value, low, high = (row.get(f"{key}{end}", "") for end in ("", "_low", "_high"))
    fmt = f"{'+' if sign else ''}.{digits}f"
    if low in ("", None) or high in ("", None):
        return format(float(value), fmt)
    if sign:
        return f"{float(value):{fmt}} [{float(low):{fmt}}, {float(high):{fmt}}]"
    return f"{float(value):{fmt}} ±{(float(high) - float(low)) / 2:.{digits}f}"


def _cell(key: str, row: dict) -> str:
    """A column's cell: counts with thousands separators, the `INTERVALS` with theirs."""
    value = row.get(key, "")
    if key in ("params", "macs") and str(value).isdigit():
        return f"{int(value):,}"
    if key in INTERVALS and value != "":
        return interval_cell(row, key, sign=key == "gain")
    return str(value)


def to_markdown(rows: list[dict], title: str) -> str:
    head = "| " + " | ".join(label for _, label, _ in COLUMNS) + " |"
    rule = "|" + "|".join(["---"] + ["---:"] * (len(COLUMNS) - 1)) + "|"
    body = ["| " + " | ".join(_cell(k, r) for k, *_ in COLUMNS) + " |" for r in rows]
    note = ("Accuracies on the task-B test split ± half their 95% bootstrap interval (1,000 "
            "resamples of the test images); the transfer gain (fine-tuned - scratch) with its "
            "paired 95% interval on the same images: above zero when both bounds are.")
    return "\n".join([f"# {title}", "", note, "", head, rule, *body, ""])


def to_text(rows: list[dict]) -> str:
    """An aligned plain-text table for the terminal (rows as collected, or read back from CSV)."""
    cells = [[short for *_, short in COLUMNS]]
    cells += [[_cell(k, r) for k, *_ in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def to_csv(rows: list[dict]) -> str:
    return csv_text(rows, [k for k, *_ in COLUMNS]
                    + [f"{k}_{end}" for k in INTERVALS for end in ("low", "high")])


def figure_markdown(figure: Path, md_path: Path) -> str:
    """The leaderboard figure, linked relative to the report."""
    rel = Path(os.path.relpath(figure, md_path.parent)).as_posix()
    return ("\n## Accuracy against cost\n\nFine-tuned test accuracy against MACs per image and "
            "against the int8 `.tflite` size; bubble area = parameters. Up and to the left is the "
            f"network to ship.\n\n![accuracy vs cost]({rel})\n")


def write_report(rows: list[dict], md_path: Path, csv_path: Path, title: str,
                 sections: tuple[str, ...] = ()) -> None:
    write_text(md_path, "\n".join([to_markdown(rows, title), *sections]))
    write_text(csv_path, to_csv(rows))
