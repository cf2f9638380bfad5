"""The results tables of the README and docs/, generated from a named run, never pasted.

`cnnzoo docs-tables` (`make docs-tables`) copies a run's result files (the report's CSV, the
sweep's, the seeds', the exports' and the other pipelines' test metrics) into `docs/results/`
(a folder source as a folder), with the date, host
and commit of the copy in `docs/results/provenance.json`, then rewrites every block between

    <!-- table: NAME -->
    <!-- /table -->

in README.md and docs/*.md from those files. A source whose content did not change keeps its
provenance. tests/test_docs_tables.py renders every block again from `docs/results/` and fails
when the docs differ: a table cannot silently go stale or be edited by hand.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from cnnzoo import logs
from cnnzoo.files import read_csv, read_json, write_json, write_text
from cnnzoo.reporting.leaderboard import interval_cell
from cnnzoo.reporting.quantization import change_text

log = logging.getLogger(__name__)

SNAPSHOT = Path("docs/results")
# snapshot name -> where a run writes it
SOURCES = {
    "leaderboard.csv": "reports/leaderboard.csv",
    "sweep.csv": "reports/sweep.csv",
    "seeds.csv": "reports/seeds.csv",
    "segment.json": "metrics/segment/test.json",
    "detect.json": "metrics/detect/test.json",
    "verify.json": "metrics/verify/test.json",
    "export": "metrics/export",  # a folder: one JSON per family
    "robustness.csv": "reports/robustness.csv",  # after `make robustness`
    # The leaderboard again, for the calibration table's ECE columns alone, so that the
    # leaderboard's own tables (and the prose quoting them) can keep an earlier run's snapshot.
    "calibration.csv": "reports/leaderboard.csv",
}
# cnnzoo.deploy.convert.VARIANTS, in its order; spelled out because importing that module loads
# TensorFlow, which `make docs-tables` does not need.
VARIANTS = ("float32", "float16", "dynamic_int8", "int8")
BLOCK = re.compile(r"(<!-- table: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)


def _table(head: list[str], rows: list[list[str]], align: str) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


def leaderboard(snapshot: Path) -> list[str]:
    rows = read_csv(snapshot / "leaderboard.csv")
    return _table(["architecture", "params", "MACs/image", "int8 file (KB)", "from scratch",
                   "fine-tuned", "gain (paired 95% CI)", "int8 TFLite"],
                  [[r["arch"], f"{int(r['params']):,}", f"{int(r['macs']):,}", r["tflite_int8_kb"],
                    *_cells(r, "acc_scratch", "acc_keras", "gain", "acc_int8")] for r in rows],
                  ["---"] + ["---:"] * 7)


def _cells(row: dict, *keys: str) -> list[str]:
    return [interval_cell(row, k, sign=k == "gain") for k in keys]


def transfer(snapshot: Path) -> list[str]:
    rows = read_csv(snapshot / "leaderboard.csv")
    return _table(["arch", "scratch", "linear probe", "fine-tuned", "gain (paired 95% CI)"],
                  [[r["arch"], *_cells(r, "acc_scratch", "acc_probe", "acc_keras", "gain")]
                   for r in rows],
                  ["---"] + ["---:"] * 4)


def sweep(snapshot: Path) -> list[str]:
    """Fine-tuned accuracy and the paired gain over scratch, per label budget."""
    rows = read_csv(snapshot / "sweep.csv")
    budgets = sorted({int(r["labels_per_class"]) for r in rows})
    archs = list(dict.fromkeys(r["arch"] for r in rows))
    cell = {(r["arch"], int(r["labels_per_class"])): r for r in rows}
    int8 = all(r.get("int8") not in (None, "") for r in rows)  # sweeps since int8 was collected
    head = ["arch", *(f"{n} labels/class: fine-tuned, gain{', int8' if int8 else ''}"
                      for n in budgets)]
    body = [[a, *(f"{interval_cell(cell[a, n], 'fine_tuned', 3)}, "
                  f"{interval_cell(cell[a, n], 'gain', 3, sign=True)}"
                  + (f", {interval_cell(cell[a, n], 'int8', 3)}" if int8 else "")
                  if (a, n) in cell else "not run" for n in budgets)] for a in archs]
    wins = ["transfer > scratch (interval above 0)",
            *(f"{sum(_above_zero(cell[a, n]) for a in archs if (a, n) in cell)} of "
              f"{sum((a, n) in cell for a in archs)}" for n in budgets)]
    gate = [["int8 within the parity gate",
             *(f"{sum(cell[a, n]['int8_gate'] == 'pass' for a in archs if (a, n) in cell)} of "
               f"{sum((a, n) in cell for a in archs)}" for n in budgets)]] if int8 else []
    return _table(head, [*body, wins, *gate], ["---"] + ["---:"] * len(budgets))


def _above_zero(row: dict) -> bool:
    return row.get("gain_low", "") not in ("", None) and float(row["gain_low"]) > 0


def seeds(snapshot: Path) -> list[str]:
    """Mean ± standard deviation over seeds, per family and pipeline (`cnnzoo seeds`)."""
    rows = read_csv(snapshot / "seeds.csv")
    return _table(["result", "seeds", "mean ± std", "min", "max"],
                  [[r["result"], r["seeds"], f"{float(r['mean']):.4f} ±{float(r['std']):.4f}",
                    f"{float(r['min']):.4f}", f"{float(r['max']):.4f}"] for r in rows],
                  ["---", "---:", "---:", "---:", "---:"])


def other_pipelines(snapshot: Path) -> list[str]:
    """Segmentation, detection and verification against their baselines, with 95% intervals."""
    def cell(record: dict, key: str) -> str:
        ci = record.get(f"{key}_ci")
        return f"{record[key]:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")

    body = []
    if (snapshot / "segment.json").is_file():
        seg = read_json(snapshot / "segment.json")
        body.append(["segmentation (U-Net)", "test mean IoU", cell(seg, "mean_iou"), "—"])
    if (snapshot / "detect.json").is_file():
        det = read_json(snapshot / "detect.json")
        body.append(["detection (YOLO v1-style)", "test mAP@0.5", cell(det, "map50"), "—"])
    if (snapshot / "verify.json").is_file():
        ver = read_json(snapshot / "verify.json")
        for method, name in (("triplet", "verification (triplet embedding)"),
                             ("binary", "verification (binary Siamese)")):
            for key, label in (("auc", "ROC AUC"), ("eer", "EER (lower is better)"),
                               ("tar_at_far_0.001", "TAR @ FAR 1e-3"),
                               ("one_shot_accuracy", "one-shot accuracy")):
                body.append([name, label, cell(ver[method], key),
                             cell(ver["raw_pixels"], key)])
    return _table(["pipeline", "metric", "value [95% CI]", "raw pixels [95% CI]"], body,
                  ["---", "---", "---:", "---:"])


def deployment(snapshot: Path) -> list[str]:
    """Each family's four TFLite files: sizes, accuracy kept, latency (`export@<arch>`)."""
    body = []
    for arch, m in _exports(snapshot):
        worst = max(VARIANTS, key=lambda v: (m[v]["drop"], -VARIANTS.index(v)))
        body.append([arch, *(f"{m[v]['size_bytes'] / 1024:,.1f}" for v in VARIANTS),
                     f"{m['int8_size_ratio']:.1f}×", m["int8_scales"].replace("_", "-"),
                     f"{m['keras_accuracy']:.4f}", f"{m[worst]['drop']:+.4f} ({worst})",
                     f"{_ms(m['int8'], 1)} / {_ms(m['int8'], 2)}", _ms(m["float32"], 1)])
    return _table(["architecture", "float32 KB", "float16 KB", "dynamic int8 KB", "int8 KB",
                   "float32 / int8", "int8 scales", "acc Keras", "largest drop",
                   "int8 ms, 1 / 2 threads", "float32 ms, 1 thread"], body,
                  ["---"] + ["---:"] * 10)


def _exports(snapshot: Path) -> list[tuple[str, dict]]:
    """(family, its export metrics) in the leaderboard's order (by name without one)."""
    board = snapshot / "leaderboard.csv"
    order = [r["arch"] for r in read_csv(board)] if board.is_file() else []
    found = {f.stem: read_json(f) for f in sorted((snapshot / "export").glob("*.json"))}
    return [(a, found[a]) for a in [a for a in order if a in found] + sorted(set(found) - set(order))]


def int8_debug(snapshot: Path) -> list[str]:
    """Per family: the int8 model's worst layer, any repair, and float32/int8 disagreement."""
    body = []
    for arch, m in _exports(snapshot):
        q, d = m["int8"], m["disagreement"]
        worst, repair = q["worst_layer"], q["repair"]
        body.append([arch, f"{worst['layer']} ({worst['op']})", f"{worst['rmse_scale']:.2f}",
                     f"{sum(e['rmse_scale'] > 1 for e in q['layers'])} of {len(q['layers'])}",
                     "none needed" if repair is None else change_text(repair),
                     f"{d['count']} ({d['float_right']} / {d['int8_right']})",
                     f"{d['median_float_margin']:.2f} / {d['median_float_margin_all']:.2f}"
                     if d["count"] else "–"])
    return _table(["architecture", "worst int8 layer (op)", "RMSE / scale", "layers > 1 step",
                   "repair", "fp32 ≠ int8 (fp32 / int8 right)", "fp32 margin there / all"],
                  body, ["---", "---"] + ["---:"] * 5)


def calibration(snapshot: Path) -> list[str]:
    """Per family: the temperature and ECE before / after it, Keras and int8."""
    rows = {r["arch"]: r for r in read_csv(snapshot / "calibration.csv")}
    body = []
    for arch, m in _exports(snapshot):
        r = rows.get(arch, {})
        keras = (f"{interval_cell(r, 'ece')} → {interval_cell(r, 'ece_scaled')}"
                 if r.get("ece") not in (None, "") else "–")
        body.append([arch, f"{m['temperature']:.3f}", keras,
                     f"{m['int8']['ece']:.4f} → {m['int8']['ece_scaled']:.4f}"])
    return _table(["architecture", "temperature T", "ECE Keras, before → after T (95% CI)",
                   "ECE int8, before → after T"], body, ["---"] + ["---:"] * 3)


def onnx(snapshot: Path) -> list[str]:
    """Per family: the ONNX file through onnxruntime against Keras and TFLite float32."""
    body = []
    for arch, m in _exports(snapshot):
        if "onnx" not in m:
            continue
        o = m["onnx"]
        body.append([arch, f"{o['size_bytes'] / 1024:,.1f}", f"{o['accuracy']:.4f}",
                     f"{o['drop']:+.4f}", f"{o['max_abs_logit_diff_float32']:.1e}",
                     f"{_ms(o, 1)} / {_ms(o, 2)}", f"{_ms(m['float32'], 1)} / "
                     f"{_ms(m['float32'], 2)}"])
    return _table(["architecture", "ONNX KB", "accuracy", "drop vs Keras",
                   "max |Δ logit| vs TFLite float32", "onnxruntime ms, 1 / 2 threads",
                   "TFLite float32 ms, 1 / 2 threads"], body, ["---"] + ["---:"] * 6)


def robustness(snapshot: Path) -> list[str]:
    """Mean corruption accuracy and per corruption (`make robustness`)."""
    from cnnzoo.reporting.robustness_table import to_markdown

    return to_markdown(read_csv(snapshot / "robustness.csv")).rstrip("\n").split("\n")


def _ms(variant: dict, threads: int) -> str:
    """Median batch-1 latency at `threads` (export.latency_threads may leave some out)."""
    ms = variant.get("latency", {}).get(f"{threads}t_median_ms")
    return "–" if ms is None else f"{ms:.3f}"


TABLES: dict[str, tuple[Callable[[Path], list[str]], tuple[str, ...]]] = {
    "leaderboard": (leaderboard, ("leaderboard.csv",)),
    "transfer": (transfer, ("leaderboard.csv",)),
    "sweep": (sweep, ("sweep.csv",)),
    "seeds": (seeds, ("seeds.csv",)),
    "other-pipelines": (other_pipelines, ("segment.json", "detect.json", "verify.json")),
    "deployment": (deployment, ("export",)),
    "int8-debug": (int8_debug, ("export",)),
    "calibration": (calibration, ("export", "calibration.csv")),
    "onnx": (onnx, ("export",)),
    "robustness": (robustness, ("robustness.csv",)),
}


def render(name: str, snapshot: Path) -> str:
    """Block `name`'s text: the table and the line that says which run it came from."""
    if name not in TABLES:
        raise KeyError(f"unknown docs table {name!r}; known: {', '.join(TABLES)}")
    make, sources = TABLES[name]
    provenance = read_json(snapshot / "provenance.json")
    runs = sorted({_describe(provenance[s]) for s in sources if s in provenance})
    origin = "; ".join(runs) or "no run recorded"
    return "\n".join([*make(snapshot), "",
                      f"<sub>Generated by `make docs-tables` from "
                      f"{', '.join(f'`{SOURCES[s]}`' for s in sources if s in provenance)} "
                      f"of {origin}.</sub>", ""])


def _describe(record: dict) -> str:
    return f"the run of {record['date']} on {record['host']} (commit {record['commit']})"


def host() -> str:
    """CPU model and core count: hosts of one type differ up to 2x, so the docs name theirs."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        model = found.group(1).strip() if found else model
    return f"{model}, {os.cpu_count()} cores"


def _commit(root: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, check=True,
                             capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out or "unknown"


def snapshot(root: Path) -> list[str]:
    """Copy the run's result files that exist and changed into docs/results/, recording when,
    where and at which commit; returns the names copied."""
    target = root / SNAPSHOT
    target.mkdir(parents=True, exist_ok=True)
    prov_path = target / "provenance.json"
    provenance = read_json(prov_path) if prov_path.is_file() else {}
    copied = []
    for name, source in SOURCES.items():
        src, dst = root / source, target / name
        if src.is_dir():
            if not any(src.glob("*.json")) or _same_folder(src, dst):
                continue
            # Whole or not at all: copied beside it, then swapped in (families no longer run
            # leave with the old folder).
            tmp = dst.with_name(dst.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(src, tmp)
            shutil.rmtree(dst, ignore_errors=True)
            tmp.rename(dst)
        elif not src.is_file() or (dst.is_file() and dst.read_bytes() == src.read_bytes()):
            continue
        else:
            shutil.copyfile(src, dst)
        provenance[name] = {"date": dt.date.today().isoformat(), "host": host(),
                            "commit": _commit(root), "source": source}
        copied.append(name)
    write_json(prov_path, provenance)
    return copied


def _same_folder(src: Path, dst: Path) -> bool:
    def files(folder: Path) -> dict[str, bytes]:
        return {f.name: f.read_bytes() for f in folder.glob("*.json")} if folder.is_dir() else {}
    return files(src) == files(dst)


def update_docs(root: Path) -> list[str]:
    """Rewrite every table block of README.md and docs/*.md from docs/results/; returns the
    files changed."""
    changed = []
    for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        text = doc.read_text()
        new = BLOCK.sub(lambda m: m.group(1) + render(m.group("name"), root / SNAPSHOT)
                        + m.group(4), text)
        if new != text:
            write_text(doc, new)
            changed.append(doc.relative_to(root).as_posix())
    return changed


def stale_blocks(root: Path) -> list[str]:
    """`file: table` for every block that differs from what docs/results/ renders."""
    stale = []
    for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        for m in BLOCK.finditer(doc.read_text()):
            if m.group("body") != render(m.group("name"), root / SNAPSHOT):
                stale.append(f"{doc.relative_to(root).as_posix()}: {m.group('name')}")
    return stale


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=Path("."), help="a checkout after a run")
    p.add_argument("--render-only", action="store_true",
                   help="rewrite the docs from docs/results/ without copying the run's files")
    args = p.parse_args(argv)
    logs.setup()
    root = args.root
    if not args.render_only and not (root / SOURCES["leaderboard.csv"]).is_file():
        log.error("no %s here: run `make run` first (or --render-only)", SOURCES["leaderboard.csv"])
        return 1
    copied = [] if args.render_only else snapshot(root)
    changed = update_docs(root)
    log.info("docs-tables: copied %s into %s; rewrote %s", ", ".join(copied) or "nothing",
             SNAPSHOT, ", ".join(changed) or "nothing (already current)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
