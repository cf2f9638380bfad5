"""`cnnzoo bench train` (part of `make bench`): how fast each architecture of the pipeline trains
here, next to the plain Keras script and next to the machine's limit.

Per architecture, in a process of its own (so that its peak resident memory is its own):

1. training images/s through the project: its `tf.data` stream (augmented copies, mixing) and
   `loop.fit` (callbacks, schedule, backup), the stage's batch size;
2. the same model trained by a plain `model.fit` on in-memory NumPy arrays, same batch size;
3. achieved training FLOP/s, 3 x forward MACs x 2 FLOP x images/s (forward, and a backward of
   about twice its cost), as a fraction of this machine's float32 `tf.matmul` rate, measured by
   the parent in the same run;
4. inference images/s (`predict`, batch 256) and peak resident memory.

Each rate is the median over `repeats` timed epochs after one warm-up epoch (which traces the
step), with min-max beside it. LiteRT batch-1 latencies come from the last `make run`'s export
metrics (`metrics/export/<arch>.json`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cnnzoo.data.serving_input import to_unit
from cnnzoo.files import write_json, write_text
from cnnzoo.tools.runner import LAST_RUN

log = logging.getLogger(__name__)


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def matmul_rate(n: int = 2048, repeats: int = 5) -> dict:
    """float32 FLOP/s of an n x n `tf.matmul` (2 n^3 FLOP), as the machine's reachable peak."""
    import tensorflow as tf

    a, b = tf.random.normal((n, n), seed=1), tf.random.normal((n, n), seed=2)
    product = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    product().numpy()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        product().numpy()  # the sum forces the result without copying n^2 values out
        rates.append(2 * n**3 / (time.perf_counter() - start))
    return spread(rates)


def _epoch_timer():
    """A callback that times each epoch's training steps: from the epoch's start to its
    validation (or its end). No per-batch hook: one would make Keras wait for every step's
    logs, and the timer would slow what it times."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []
            self._start = None

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def _stop(self):
            if self._start is not None:
                self.seconds.append(time.perf_counter() - self._start)
                self._start = None

        def on_test_begin(self, logs=None):
            self._stop()

        def on_epoch_end(self, epoch, logs=None):
            self._stop()

    return EpochTimer()


def _interleave(run):
    """A callback that runs `run()` (one plain-Keras epoch) after each of the project's epochs.
    This host's speed switches between two levels ~1.5x apart every few seconds, so the two
    sides are measured in alternation and compared pair by pair."""
    import keras

    class Interleave(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            run()

    return Interleave()


def measure_arch(arch: str, params, prepared: str, augmented: str, steps: int, repeats: int,
                 epoch_flop: float) -> dict:
    """The figures of one architecture (see the module docstring), in this process."""
    import keras
    import numpy as np

    from cnnzoo.data.datasets import load_meta, load_split, make_dataset
    from cnnzoo.models import create_model
    from cnnzoo.models.cost import total_macs
    from cnnzoo.models.kernels import use_stock_kernels
    from cnnzoo.stages.training import training_data
    from cnnzoo.training import loop

    meta = load_meta(prepared)
    k, shape = len(meta["task_a"]["classes"]), tuple(meta["image_shape"])
    cfg = params.pretrain.for_arch(arch)
    batch = cfg.batch_size
    x, y = load_split(prepared, "a_train")

    def build():
        return create_model(arch, input_shape=shape, num_classes=k, **params.model_kwargs(arch))

    # Epochs as long as the pretrain stage's, up to ~`epoch_flop` of training work: each plain
    # epoch is a fit call of its own, and a call's set-up (~15 ms) would weigh on short epochs
    # of the light models far more than on the stage's. The steps per execution are the stage's.
    stage_steps = loop.plan_epochs(cfg, cfg.images or len(x))[1]
    spe = loop.execution_steps(stage_steps)
    macs = total_macs(build())
    steps = min(stage_steps, max(steps, round(epoch_flop / (6 * macs * batch))))
    steps = spe * max(1, round(steps / spe))
    x, y = x[: steps * batch], y[: steps * batch]

    # The 40-line script: the same network in stock Keras layers, Keras' own fit on NumPy
    # arrays, the same batch size.
    plain = build()
    stock = use_stock_kernels(plain)
    plain.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    xs = to_unit(x)
    ys = keras.utils.to_categorical(y, k)
    theirs = _epoch_timer()

    def plain_epoch():
        plain.fit(xs, ys, batch_size=batch, epochs=1, shuffle=True, verbose=0,
                  callbacks=[theirs])

    ours = _epoch_timer()
    ds, _ = training_data(x, y, task="a", num_classes=k, cfg=cfg, augmented=augmented,
                          seed=params.base.seed)
    with tempfile.TemporaryDirectory(prefix="cnnzoo-bench-") as tmp:
        model = loop.fit(build, ds, make_dataset(x[:batch], y[:batch], batch_size=batch,
                                                  num_classes=k),
                          cfg.model_copy(update={"epochs": 1 + repeats}), params.base,
                          history_csv=Path(tmp) / "h.csv", backup_dir=Path(tmp) / "b",
                          steps_per_epoch=steps, steps_per_execution=spe,
                          callbacks=[ours, _interleave(plain_epoch)])

    infer_batch = 256
    xi = np.resize(xs, (infer_batch * 2, *shape))
    model.predict(xi, batch_size=infer_batch, verbose=0)  # warm-up: traces predict
    infer = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(xi, batch_size=infer_batch, verbose=0)
        infer.append(len(xi) / (time.perf_counter() - start))

    def rates(timer, images):
        return spread([images / s for s in timer.seconds[1:]])  # epoch 1 traces

    # Per pair of neighbouring epochs: (plain seconds per image) / (project seconds per image).
    pairs = [(t / len(x)) / (o / (steps * batch))
             for o, t in zip(ours.seconds[1:], theirs.seconds[1:], strict=True)]
    return {"arch": arch, "batch_size": batch, "steps_per_epoch": steps,
            "steps_per_execution": spe, "stock_layers_in_reference": stock, "macs": macs,
            "project_images_per_s": rates(ours, steps * batch),
            "keras_images_per_s": rates(theirs, len(x)),
            "pair_ratios": spread(pairs), "inference_images_per_s": spread(infer),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _export_latency(metrics_dir: Path, arch: str) -> dict:
    path = metrics_dir / "export" / f"{arch}.json"
    if not path.is_file():
        return {}
    ex = json.loads(path.read_text())
    return {v: ex[v]["latency"]["1t_median_ms"] for v in ("float32", "int8")
            if v in ex and "latency" in ex[v]}


def run(params_path: str, prepared: str, augmented: str, out: Path, *, archs: list[str] | None,
        quick: bool, metrics_dir: Path = Path("metrics"), last_run: Path = LAST_RUN) -> dict:
    """Every architecture in its own process, then the table; writes out/results.json and
    out/results.md."""
    from cnnzoo import config
    from cnnzoo.tools import timeline

    params = config.load(params_path)
    archs = archs or params.base.archs
    # Timed epochs of >= 48 steps and ~2 s (at 80 GFLOP/s): shorter ones were +-30% from run to
    # run. Quick: 8 steps, ~0.5 s.
    steps, repeats, epoch_flop = (8, 3, 40e9) if quick else (48, 5, 160e9)
    peak = matmul_rate(1024 if quick else 2048)
    log.info("float32 matmul: %.1f GFLOP/s (median)", peak["median"] / 1e9)
    rows = []
    for i, arch in enumerate(archs, 1):
        log.info("[%d/%d] %s ...", i, len(archs), arch)
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            subprocess.run([sys.executable, "-m", "cnnzoo.tools.perf", "--one", arch, "--params",
                            params_path, "--prepared", prepared, "--augmented", augmented,
                            "--steps", str(steps), "--repeats", str(repeats), "--epoch-flop",
                            str(epoch_flop), "--json", f.name],
                           check=True, env={**os.environ, "CNNZOO_LOG_LEVEL": "WARNING"})
            row = json.loads(Path(f.name).read_text())
        row["ratio_to_keras"] = row["pair_ratios"]["median"]
        flops = 3 * row["macs"] * 2 * row["project_images_per_s"]["median"]
        row["train_flops_fraction_of_matmul"] = flops / peak["median"]
        row["litert_batch1_ms"] = _export_latency(metrics_dir, arch)
        rows.append(row)
    result = {"matmul_flops": peak, "quick": quick, "repeats": repeats, "archs": rows,
              "make_run": timeline.split(last_run)}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", result)
    write_text(out / "results.md", table(result) + "\n")
    return result


def _r(s: dict, scale: float = 1.0, fmt: str = ",.0f") -> str:
    return (f"{s['median'] * scale:{fmt}} ({s['min'] * scale:{fmt}}–"
            f"{s['max'] * scale:{fmt}})")


def table(result: dict) -> str:
    head = ("| arch | batch | project img/s | Keras fit img/s | ratio | train FLOP/s of matmul "
            "| inference img/s (b256) | LiteRT fp32 / int8 ms | peak RSS MiB |")
    lines = [f"float32 matmul rate: {result['matmul_flops']['median'] / 1e9:.1f} GFLOP/s "
             f"({result['matmul_flops']['min'] / 1e9:.1f}–"
             f"{result['matmul_flops']['max'] / 1e9:.1f}); each figure: median (min–max) of "
             f"{result['repeats']} timed epochs after a warm-up", "", head,
             "|" + "---|" * (head.count("|") - 1)]
    for r in result["archs"]:
        lat = r["litert_batch1_ms"]
        lat_s = " / ".join(f"{lat[v]:.3f}" for v in ("float32", "int8") if v in lat) or "–"
        lines.append(f"| {r['arch']} | {r['batch_size']} | {_r(r['project_images_per_s'])} | "
                     f"{_r(r['keras_images_per_s'])} | {r['ratio_to_keras']:.2f} | "
                     f"{r['train_flops_fraction_of_matmul']:.0%} | "
                     f"{_r(r['inference_images_per_s'])} | {lat_s} | {r['peak_rss_mib']:,.0f} |")
    from cnnzoo.tools import timeline

    return "\n".join([*lines, "", timeline.table(result.get("make_run"))])


def _main() -> int:
    from cnnzoo import config, logs

    logs.setup()
    p = argparse.ArgumentParser(description="one architecture's figures (used by cnnzoo bench)")
    p.add_argument("--one", required=True)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--prepared", default="data/prepared")
    p.add_argument("--augmented", default="data/augment")
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epoch-flop", type=float, default=40e9)
    p.add_argument("--json", required=True)
    a = p.parse_args()
    params = config.load(a.params)
    write_json(a.json, measure_arch(a.one, params, a.prepared, a.augmented, a.steps,
                                    a.repeats, a.epoch_flop))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
