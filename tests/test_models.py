"""Every registered model: tiny forward pass, safe_mode round trip; reference parameter counts."""

import keras
import numpy as np
import pytest

from cnnzoo.models import FEATURES, HEAD, create_model, list_models, model_hparams

SMALL = {"mobilenet_v2": {"alpha": 0.35, "small_input": True}}


def trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize("name", list_models())
def test_forward_and_safe_round_trip(name, tmp_path):
    model = create_model(name, input_shape=(32, 32, 1), num_classes=7, **SMALL.get(name, {}))
    assert model.name == name
    assert model.get_layer(HEAD).units == 7 and model.get_layer(FEATURES) is not None
    x = np.random.default_rng(0).random((2, 32, 32, 1), dtype=np.float32)
    y = model.predict(x, verbose=0)
    assert y.shape == (2, 7) and np.isfinite(y).all()
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(again.predict(x, verbose=0), y, rtol=1e-5, atol=1e-5)
    headless = create_model(name, input_shape=(32, 32, 1), num_classes=7, include_top=False,
                            **SMALL.get(name, {}))
    assert headless.output.shape == model.get_layer(FEATURES).output.shape


def test_lenet5_has_61706_parameters():
    assert trainable(create_model("lenet5", input_shape=(32, 32, 1), num_classes=10)) == 61_706


def test_mobilenet_v2_matches_reference_count():
    model = create_model("mobilenet_v2", input_shape=(224, 224, 3), num_classes=1000)
    assert trainable(model) == 3_504_872
    assert model.get_layer(FEATURES).output.shape[-1] == 1280


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown model 'vgg99'; known: lenet5, mobilenet_v2"):
        create_model("vgg99", input_shape=(32, 32, 1), num_classes=10)
    with pytest.raises(ValueError, match="at least 32"):
        create_model("lenet5", input_shape=(28, 28, 1), num_classes=10)
    with pytest.raises(ValueError, match="unknown setting.*depth"):
        create_model("lenet5", input_shape=(32, 32, 1), num_classes=10, depth=3)
    assert model_hparams("mobilenet_v2") == {"alpha", "small_input", "bn_momentum", "include_top"}
