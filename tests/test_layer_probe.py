"""The layer probe behind the verification backbone's choice: its scores are the verification
AUC of each layer as an embedding, on the images it is given."""

import numpy as np

from cnnzoo.models import create_model
from cnnzoo.tasks import verification
from cnnzoo.tools import layer_probe


def _images(seed, n=40):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    x = rng.integers(0, 60, (n, 32, 32, 1)).astype(np.uint8)
    x[y == 1, 8:24, 8:24] += 150  # identity 1: a bright square
    return x, y


def test_probe_scores_layers_as_embeddings_and_tabulates_them():
    model = create_model("lenet5", input_shape=(32, 32, 1), num_classes=5)
    seen, unseen = _images(0), _images(1)
    rows = layer_probe.probe(model, "lenet5", seen, unseen, every=1)
    by = {(r.layer, r.pooled): r for r in rows}
    assert ("features", False) in by and ("c1_conv", True) in by and ("c1_conv", False) in by
    assert by["c1_conv", True].dim == 6 and by["c1_conv", False].dim == 28 * 28 * 6
    # the input layer's flattened "embedding" is the pixels: the probe's AUC is theirs
    x, y = unseen
    e = x.reshape(len(x), -1) / np.float32(255)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    far, tar, _ = verification.roc(verification.Pairs.from_matrix(verification.distance_similarity(e), y))
    np.testing.assert_allclose(by["input", False].unseen_auc, verification.auc(far, tar), atol=1e-9)
    text = layer_probe.table(rows)
    assert text.startswith("| family |") and "| lenet5 | `" in text
    assert f"{len(rows)} layers and poolings" in text


def test_rank_correlation_is_spearmans():
    assert layer_probe.rank_correlation([0.1, 0.5, 0.3], [1, 3, 2]) == 1.0
    assert layer_probe.rank_correlation([0.1, 0.5, 0.3], [3, 1, 2]) == -1.0
