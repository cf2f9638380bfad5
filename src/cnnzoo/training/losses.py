"""Losses beyond cross-entropy, in `keras.ops` (tensorflow-addons, which had the triplet loss, is
end-of-life and does not import with Keras 3).

Triplet loss (Schroff, Kalenichenko & Philbin 2015, "FaceNet"): for an anchor a, a positive p of
the same identity and a negative n of another, [d(a,p) - d(a,n) + margin]+ with the Euclidean
distance d between embeddings. Online semi-hard mining picks the negatives inside each batch.
"""

from __future__ import annotations

import keras
from keras import ops


def pairwise_distances(embeddings):
    """(B, D) -> (B, B) Euclidean distances; exactly 0 on the diagonal, and a gradient that
    stays finite where two embeddings coincide (sqrt's derivative is infinite at 0)."""
    sq = ops.sum(ops.square(embeddings), axis=1)
    d2 = ops.expand_dims(sq, 1) - 2.0 * ops.matmul(embeddings, ops.transpose(embeddings)) \
        + ops.expand_dims(sq, 0)
    d2 = ops.maximum(d2, 0.0)
    zero = ops.cast(ops.less_equal(d2, 0.0), d2.dtype)
    d = ops.sqrt(d2 + zero * 1e-16) * (1.0 - zero)
    n = ops.shape(embeddings)[0]
    return d * (1.0 - ops.eye(n, dtype=d.dtype))


def triplet_semihard_loss(labels, embeddings, margin: float = 1.0):
    """Mean over every (anchor, positive) pair in the batch of [d(a,p) - d(a,n) + margin]+,
    where n is the anchor's semi-hard negative:

    1. the closest negative that is still farther than the positive (d(a,n) > d(a,p));
    2. when no negative is farther, the farthest negative (the least hard one available).

    The same selection as tensorflow-addons' `triplet_semihard_loss`. 0 for a batch without
    positive pairs. `labels` (B,) identity labels; `embeddings` (B, D).
    """
    labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
    embeddings = ops.cast(embeddings, "float32")
    d = pairwise_distances(embeddings)
    same = ops.equal(ops.expand_dims(labels, 1), ops.expand_dims(labels, 0))
    negative = ops.logical_not(same)
    n = ops.shape(labels)[0]
    # [a, p, n]: is n a negative of a farther from a than p is?
    farther = ops.logical_and(ops.expand_dims(negative, 1),
                              ops.greater(ops.expand_dims(d, 1), ops.expand_dims(d, 2)))
    big = ops.max(d) + 1.0
    # 1. closest farther negative (masked minimum over n)
    closest = ops.min(ops.where(farther, ops.expand_dims(d, 1), big), axis=2)
    # 2. farthest negative of a (masked maximum over n), the same for every p
    farthest = ops.max(ops.where(negative, d, -1.0), axis=1, keepdims=True)
    chosen = ops.where(ops.any(farther, axis=2), closest, ops.broadcast_to(farthest, (n, n)))
    positive = ops.logical_and(same, ops.logical_not(ops.eye(n, dtype="bool")))
    # An anchor without any negative has no triplet (farthest = -1): leave it out.
    positive = ops.logical_and(positive, ops.greater_equal(farthest, 0.0))
    mask = ops.cast(positive, "float32")
    losses = ops.maximum(d - chosen + margin, 0.0) * mask
    return ops.sum(losses) / ops.maximum(ops.sum(mask), 1.0)


@keras.saving.register_keras_serializable(package="cnnzoo")
class TripletSemiHardLoss(keras.losses.Loss):
    """`triplet_semihard_loss` as a Keras loss: y_true = identity labels, y_pred = embeddings."""

    def __init__(self, margin: float = 1.0, name: str = "triplet_semihard_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.margin = margin

    def call(self, y_true, y_pred):
        return triplet_semihard_loss(y_true, y_pred, self.margin)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin}
