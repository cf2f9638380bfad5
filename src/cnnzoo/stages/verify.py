"""The verification pipeline: verify (triplet embedding on task A) and verify_pairs (the binary
Siamese variant) -> verify_evaluate (one-shot, on task B's classes, never seen in training)
-> verify_export (the embedding as TFLite, parity gate on AUC)."""

from __future__ import annotations

import logging

import numpy as np

from cnnzoo.config import Params
from cnnzoo.data.serving_input import to_unit
from cnnzoo.files import read_json, write_json
from cnnzoo.stages.common import data_record, log_data
from cnnzoo.stages.exporting import gate_and_write
from cnnzoo.stages.training import augmented_copies, finish, fit, fit_arrays, trains
from cnnzoo.tracking.client import stage_run

log = logging.getLogger(__name__)


def _task_a(params: Params, prepared: str, images: int):
    from cnnzoo.data.datasets import load_split

    (x, y), (x_val, y_val) = (load_split(prepared, f"a_{s}") for s in ("train", "val"))
    return (x[:images], y[:images]) if images else (x, y), (x_val, y_val)


def _tower(params: Params, shape: tuple[int, ...], init: str | None):
    """The embedding model, its backbone initialised from the task-A classifier (`init`) or
    at random (`verify.init: scratch`)."""
    import keras

    from cnnzoo.models import siamese

    cfg = params.verify
    start = keras.models.load_model(init) if cfg.init == "pretrain" and init else None
    backbone = siamese.backbone_from(cfg.backbone, shape, start, cfg.layer,
                                     **({} if start else params.model_kwargs(cfg.backbone)))
    return siamese.embedding_model(backbone, cfg.embedding_dim)


def rotated_identities(ds, rotations: int, seed: int):
    """A (images, class labels) batch stream -> each image turned by k x 90 degrees (k drawn per
    image, seeded) with identity class x rotations + k."""
    import tensorflow as tf

    if rotations == 1:
        return ds

    def turn(x, y):
        k = tf.random.uniform(tf.shape(y), 0, rotations, dtype=tf.int32, seed=seed)
        turned = tf.stack([tf.image.rot90(x, r * 4 // rotations) for r in range(rotations)], 1)
        return tf.gather(turned, k, batch_dims=1), tf.cast(y, tf.int32) * rotations + k

    return ds.map(turn)


def instance_views(ds, seed: int):
    """A (images, labels) batch stream -> two views of every image (a random left-right flip
    and a shift of up to 2 pixels each, seeded), labelled by the image's place in its batch:
    each image is an identity of its own and its other view its positive."""
    import tensorflow as tf

    def view(x, k):
        x = tf.image.random_flip_left_right(x, seed=seed + k)
        x = tf.pad(x, [[0, 0], [2, 2], [2, 2], [0, 0]])
        return tf.image.random_crop(x, tf.shape(x) - [0, 4, 4, 0], seed=seed + k)

    def two(x, y):
        i = tf.range(tf.shape(x)[0], dtype=tf.int32)
        return tf.concat([view(x, 1), view(x, 2)], 0), tf.concat([i, i], 0)

    return ds.map(two)


def _val_auc(similarity: np.ndarray, y: np.ndarray) -> float:
    from cnnzoo.tasks import verification

    return verification.roc_auc(verification.Pairs.from_matrix(similarity, y))


@trains("prepared", "augmented", "init")
def verify(params: Params, *, prepared: str, augmented: str, init: str | None, out: str,
           metrics: str, history: str) -> None:
    """The embedding, trained with the triplet loss and online semi-hard mining on task A's
    images, each its own identity (`verify.identities: instance`) or its class's."""
    from cnnzoo.data.datasets import copies_dataset
    from cnnzoo.tasks import verification
    from cnnzoo.training import loop
    from cnnzoo.training.losses import TripletSemiHardLoss

    cfg, seed = params.verify, params.base.seed
    (x, y), (x_val, y_val) = _task_a(params, prepared, cfg.train.images)
    copies, labels = augmented_copies(x, y, task="a", augmented=augmented,
                                      enabled=cfg.train.augment)
    train_ds, _ = copies_dataset(copies, labels, batch_size=cfg.train.batch_size,
                                 num_classes=None, seed=seed)
    train_ds = (instance_views(train_ds, seed) if cfg.identities == "instance"
                else rotated_identities(train_ds, cfg.rotations, seed))
    triplet = loop.Objective(loss=lambda c: TripletSemiHardLoss(cfg.margin),
                             metrics=lambda model: [],
                             target=lambda model: np.zeros((1,), np.int32))
    tracked = {"verify": cfg.model_dump(exclude={"pairs"}), "seed": params.base.seed,
               "train_images": len(x),
               "init": init if cfg.init == "pretrain" else "scratch"}
    with stage_run("verify", cfg.backbone, experiment=params.base.experiment,
                   params=tracked) as run:  # validation: task A's classes, upright
        log_data(run, params, x, y, "task A", "train")
        model = fit_arrays(lambda: _tower(params, x.shape[1:], init), x, y, x_val, y_val,
                           cfg.train, params, objective=triplet, history=history, key=tracked,
                           run=run, train_ds=train_ds)
        emb = model.predict(to_unit(x_val), batch_size=256, verbose=0)
        identities = len(x) if cfg.identities == "instance" else len(np.unique(y)) * cfg.rotations
        result = {"val_auc_seen_classes": _val_auc(verification.distance_similarity(emb), y_val),
                  "train_images": len(x), "identities": int(identities)}
        finish(model, run, out=out, metrics=metrics, history=history, result=result)
    log.info("verify %s: triplet embedding, task-A validation AUC %.4f", cfg.backbone,
             result["val_auc_seen_classes"])


def _pairs(y: np.ndarray, n: int, rotations: int, rng: np.random.Generator):
    """`n` pairs (first, second, k1, k2, same), half of them of the same identity (class and
    rotation, as `rotated_identities`) and half of two different identities."""
    by_class = [np.flatnonzero(y == c) for c in np.unique(y)]
    ids = len(by_class) * rotations
    half = n // 2
    u = rng.integers(0, ids, n)
    v = np.r_[u[:half], (u[half:] + rng.integers(1, ids, n - half)) % ids]  # another identity
    first = np.array([rng.choice(by_class[i // rotations]) for i in u])
    second = np.array([rng.choice(by_class[i // rotations]) for i in v])
    same = (u == v).astype(np.float32)[:, None]
    order = rng.permutation(n)
    return tuple(a[order] for a in (first, second, (u % rotations).astype(np.int32),
                                    (v % rotations).astype(np.int32), same))


def _pair_dataset(x: np.ndarray, pairs, batch_size: int, *, training: bool, seed: int,
                  rotations: int):
    import tensorflow as tf

    from cnnzoo.data.datasets import AUTOTUNE, to_float

    images = tf.constant(x)
    ds = tf.data.Dataset.from_tensor_slices(pairs)
    if training:
        ds = ds.shuffle(len(pairs[0]), seed=seed, reshuffle_each_iteration=True)
    def gather(i, k):  # images i, each turned by k x 90 degrees
        turned = tf.stack([tf.image.rot90(to_float(tf.gather(images, i)), r) for r in range(4)], 1)
        return tf.gather(turned, k * 4 // rotations, batch_dims=1)

    ds = ds.batch(batch_size).map(lambda i, j, ki, kj, t: ((gather(i, ki), gather(j, kj)), t),
                                  num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


@trains("prepared", "init")
def verify_pairs(params: Params, *, prepared: str, init: str | None, out: str, metrics: str,
                 history: str) -> None:
    """The binary variant: sigmoid(weighted |f(x1) - f(x2)|), binary cross-entropy on pairs."""
    import keras

    from cnnzoo.models import siamese
    from cnnzoo.tasks import verification
    from cnnzoo.training import loop

    cfg, seed = params.verify, params.base.seed
    (x, y), (x_val, y_val) = _task_a(params, prepared, cfg.pairs.images)
    rng = np.random.default_rng(seed)
    train_pairs = _pairs(y, cfg.pairs_per_epoch, cfg.rotations, rng)
    val_pairs = _pairs(y_val, min(cfg.pairs_per_epoch, 4 * len(y_val)), 1, rng)  # upright
    objective = loop.Objective(
        loss=lambda c: keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=lambda model: [],
        target=lambda model: np.zeros((1, 1), np.float32))
    train_ds = _pair_dataset(x, train_pairs, cfg.pairs.batch_size, training=True, seed=seed,
                             rotations=cfg.rotations)
    # Every setting that shapes the model: a killed run resumes only under the same ones.
    tracked = {"verify": cfg.model_dump(exclude={"train"}), "seed": seed,
               "init": init if cfg.init == "pretrain" else "scratch"}
    with stage_run("verify_pairs", cfg.backbone, experiment=params.base.experiment,
                   params=tracked) as run:
        log_data(run, params, x, y, "task A", "train")
        model = fit(lambda: siamese.pair_model(_tower(params, x.shape[1:], init)),
                    train_ds.repeat(),
                    _pair_dataset(x_val, val_pairs, 256, training=False, seed=seed, rotations=1),
                    cfg.pairs, params, run, images=cfg.pairs_per_epoch, history=history,
                    key=tracked, objective=objective,
                    calibration=_pair_dataset(x, train_pairs, cfg.pairs.batch_size,
                                              training=False, seed=seed,
                                              rotations=cfg.rotations))
        # AUC, not accuracy at logit 0 (nor Keras' binned AUC): the head starts as minus the L1
        # distance, far below 0, and evaluation picks its threshold on validation images.
        logits = model.predict(_pair_dataset(x_val, val_pairs, 256, training=False, seed=seed,
                                             rotations=1), verbose=0)[:, 0]
        scored = verification.Pairs(logits.astype(np.float64), val_pairs[-1][:, 0] > 0.5)
        result = {"val_pair_auc": verification.roc_auc(scored),
                  "pairs_per_epoch": cfg.pairs_per_epoch}
        finish(model, run, out=out, metrics=metrics, history=history, result=result)
    log.info("verify_pairs %s: task-A validation pair AUC %.4f", cfg.backbone,
             result["val_pair_auc"])


def _task_b(params: Params, prepared: str):
    from cnnzoo.data.datasets import load_meta, load_split

    names = load_meta(prepared)["task_b"]["names"]
    if len(names) < 2:
        raise ValueError(f"verification needs at least 2 task-B classes (identities); "
                         f"data.task_b_classes selects {len(names)}")
    (x_val, y_val), (x, y) = load_split(prepared, "b_val"), load_split(prepared, "b_test")
    n = params.verify.test_images
    return names, (x_val, y_val), ((x[:n], y[:n]) if n else (x, y))


def _similarities(embedding, pairs_model, x: np.ndarray) -> dict[str, np.ndarray]:
    """Similarity matrices of `x` under the three methods compared."""
    from cnnzoo.models import siamese
    from cnnzoo.tasks import verification

    xf = to_unit(x)
    head = pairs_model.get_layer("head")
    w, b = (v.numpy() if hasattr(v, "numpy") else np.asarray(v) for v in head.weights)
    tower = siamese.tower(pairs_model)
    return {"triplet": verification.distance_similarity(embedding.predict(xf, batch_size=256, verbose=0)),
            "binary": verification.weighted_l1_similarity(tower.predict(xf, batch_size=256, verbose=0),
                                                          w, float(b[0])),
            "raw_pixels": verification.distance_similarity(xf)}


def verify_evaluate(params: Params, *, prepared: str, embedding: str, pairs: str, metrics: str,
                    roc: str) -> None:
    """One-shot verification and identification on task B's classes: ROC AUC, EER, TAR at FAR
    1e-2 / 1e-3, accuracy at the validation threshold, one-shot identification; for the triplet
    embedding, the binary variant and raw pixels (the baseline)."""
    import keras

    from cnnzoo.reporting.figures import roc_plot
    from cnnzoo.tasks import verification
    from cnnzoo.tasks.intervals import percentile_interval

    names, (x_val, y_val), (x, y) = _task_b(params, prepared)
    with stage_run("verify_evaluate", params.verify.backbone, experiment=params.base.experiment,
                   params={"test_images": len(y), "galleries": params.verify.galleries}) as run:
        log_data(run, params, x, y, "task B", "test")
        emb_model, pair_net = keras.models.load_model(embedding), keras.models.load_model(pairs)
        val = _similarities(emb_model, pair_net, x_val)
        test = _similarities(emb_model, pair_net, x)
        result: dict = {"classes": names, "test_images": len(y)}
        curves, resampled = {}, {}
        for method in test:
            pairs_test = verification.Pairs.from_matrix(test[method], y)
            threshold = verification.best_threshold(verification.Pairs.from_matrix(val[method], y_val))
            result[method] = {**verification.summary(pairs_test, threshold),
                              **_one_shot(test[method], y, params)}
            resampled[method] = verification.resampled_metrics(test[method], y)
            result[method].update({f"{k}_ci": percentile_interval(v)
                                   for k, v in resampled[method].items()})
            far, tar, _ = verification.roc(pairs_test)
            curves[method.replace("_", " ")] = (far, tar, result[method]["auc"])
        for method in ("triplet", "binary"):  # paired: the same resampled images for both
            result[method]["auc_over_raw_pixels_ci"] = percentile_interval(
                resampled[method]["auc"] - resampled["raw_pixels"]["auc"])
        result["pairs"] = len(y) * (len(y) - 1) // 2
        result["genuine_pairs"] = int(sum(int(c) * (int(c) - 1) // 2 for c in np.bincount(y)))
        result["data"] = data_record(prepared)
        write_json(metrics, result)
        roc_plot(curves, roc, title=f"verification on unseen classes ({', '.join(names)})")
        run.log_metrics({f"{m}_{k}": v for m in test for k, v in result[m].items()})
        run.log_artifact(roc)
    for method in test:
        r = result[method]
        log.info("verify %-10s AUC %.4f (95%% CI %.4f-%.4f)  EER %.4f  TAR@1e-3 %.4f  accuracy "
                 "%.4f  one-shot %.4f", method, r["auc"], *r["auc_ci"], r["eer"],
                 r["tar_at_far_0.001"], r["verification_accuracy"], r["one_shot_accuracy"])


def _one_shot(similarity: np.ndarray, y: np.ndarray, params: Params) -> dict:
    """One-shot identification accuracy over the seeded galleries, with its bootstrap interval
    over the probe images (a ratio: correct identifications over probe turns)."""
    from cnnzoo.tasks import verification
    from cnnzoo.tasks.intervals import percentile_interval, weights

    correct, probed = verification.one_shot_trials(similarity, y, params.verify.galleries,
                                                   params.base.seed)
    w = weights(len(y))
    return {"one_shot_accuracy": float(correct.sum() / probed.sum()),
            "one_shot_accuracy_ci": percentile_interval(w @ correct / (w @ probed))}


def verify_export(params: Params, *, prepared: str, model: str, out: str, metrics: str,
                  evaluated: str | None = None) -> None:
    """The triplet embedding as float32 and int8 TFLite, gated on test AUC."""
    import keras

    from cnnzoo.data.datasets import load_split
    from cnnzoo.deploy import parity
    from cnnzoo.tasks import verification

    cfg = params.export
    names, _, (x, y) = _task_b(params, prepared)
    xf = to_unit(x)
    x_rep = load_split(prepared, "a_train")[0][: cfg.representative_samples] / np.float32(255)
    reference = read_json(evaluated)["triplet"]["auc"] if evaluated else None

    def score(predict) -> float:
        return _val_auc(verification.distance_similarity(predict(xf)), y)

    with stage_run("verify_export", params.verify.backbone, experiment=params.base.experiment,
                   params={"export": cfg.model_dump()}) as run:
        log_data(run, params, x, y, "task B", "test")
        net = keras.models.load_model(model)
        files, result = parity.convert_and_score(net, ("float32", "int8"), cfg, x_rep=x_rep,
                                                 score=score, metric="auc", name="embedding",
                                                 keras_value=reference)
        card = {"arch": f"siamese_{params.verify.backbone}", "task": "verification",
                "input": {"shape": list(x.shape[1:]), "dtype": "float32", "range": [0.0, 1.0],
                          "normalisation": "pixel / 255"},
                "output": f"L2-normalised {params.verify.embedding_dim}-d embedding; "
                          "same identity when ||f(x1) - f(x2)|| is small"}
        gate_and_write(out, metrics, files, result, run, name="embedding", metric="auc",
                       max_drop=cfg.max_drop, card=card)
    log.info("verify_export: float32 and int8 within %.3f AUC of Keras %.4f", cfg.max_drop,
             result["keras_auc"])
