"""The end of an export stage: the folder of TFLite files and its model card, written atomically,
and the parity gate of the segmentation, detection and verification exports."""

from __future__ import annotations

from pathlib import Path

from cnnzoo.files import atomic_path, write_json


def gate_and_write(out: str, metrics: str, files: dict[str, bytes], result: dict, run, *,
                   name: str, metric: str, max_drop: float, card: dict,
                   labels: list[str] | None = None) -> None:
    """The end of a non-classifier export stage: log every variant's size, `metric` and drop,
    fail on the parity gate (`export.max_drop`), else write the folder (`<name>_<variant>.tflite`
    and model.json: `card` plus the variants) and the metrics."""
    from cnnzoo.deploy import parity

    failures = parity.gate_failures(result, max_drop, metric)
    run.log_metrics({f"{v}_{k}": result[v][k] for v in files for k in ("size_bytes", metric,
                                                                        "drop")})
    if failures:
        raise RuntimeError(f"{name}: TFLite parity gate failed: " + "; ".join(failures))
    card = {**card,
            "variants": {v: {"file": f"{name}_{v}.tflite", "size_bytes": len(c),
                             metric: result[v][metric]} for v, c in files.items()},
            f"keras_{metric}": result[f"keras_{metric}"]}
    write_export(out, files, card, run, labels=labels)
    write_json(metrics, result)


def write_export(out: str, files: dict[str, bytes], card: dict, run,
                 labels: list[str] | None = None) -> None:
    """An export folder written atomically as a whole: the .tflite files (named in
    card["variants"]) and any other file the card names under the same key (`onnx`), labels.txt
    when given and model.json; then logged as `tflite` artifacts."""
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for variant, content in files.items():
            entry = card["variants"].get(variant) or card[variant]
            (tmp / entry["file"]).write_bytes(content)
        if labels is not None:
            (tmp / "labels.txt").write_text("\n".join(labels) + "\n")
        write_json(tmp / "model.json", card)
    for f in sorted(Path(out).iterdir()):
        run.log_artifact(f, folder="tflite")
