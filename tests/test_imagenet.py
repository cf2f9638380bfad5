"""ImageNet starts: offline, with a weights file saved from a locally built keras.applications
model (weights=None) in the legacy no-top format of the real download."""

import h5py
import keras
import numpy as np
import pytest

from cnnzoo.training import imagenet


def save_legacy_weights(model: keras.Model, path) -> None:
    """The HDF5 layout of keras.applications' `*_notop.h5` files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        layers = [lyr for lyr in model.layers if lyr.weights]
        f.attrs["layer_names"] = [lyr.name.encode() for lyr in layers]
        for lyr in layers:
            group = f.create_group(lyr.name)
            weights = lyr.trainable_weights + lyr.non_trainable_weights
            names = [f"{lyr.name}/w{i}" for i in range(len(weights))]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for name, w in zip(names, weights, strict=True):
                group.create_dataset(name, data=keras.ops.convert_to_numpy(w))


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    return tmp_path / "keras"


def test_weights_load_into_the_wrapped_network(keras_home):
    reference = keras.applications.MobileNetV2(include_top=False, weights=None,
                                               input_shape=(32, 32, 3))
    for i, w in enumerate(reference.weights):  # recognisable values
        w.assign(np.full(w.shape, i / 100, dtype="float32"))
    save_legacy_weights(reference, imagenet.cache_path("mobilenet_v2"))
    model = imagenet.imagenet_model("mobilenet_v2", input_shape=(32, 32, 1), num_classes=5,
                                    size=32)
    assert model.output_shape == (None, 5) and model.get_layer("grey_to_rgb")
    ours = {w.path: keras.ops.convert_to_numpy(w) for w in model.weights}
    for w in reference.weights:
        np.testing.assert_array_equal(ours[w.path], keras.ops.convert_to_numpy(w))
    grey = np.random.default_rng(0).random((2, 32, 32, 1)).astype("float32")
    assert np.isfinite(model.predict(grey, verbose=0)).all()


def test_a_wrong_file_names_the_mismatch(keras_home):
    other = keras.applications.MobileNet(include_top=False, weights=None, input_shape=(32, 32, 3))
    save_legacy_weights(other, imagenet.cache_path("mobilenet_v2"))
    with pytest.raises(RuntimeError, match="does not fit keras.applications.MobileNetV2"):
        imagenet.imagenet_model("mobilenet_v2", input_shape=(32, 32, 1), num_classes=5, size=32)


def test_offline_failure_names_url_and_cache_path(keras_home):
    with pytest.raises(RuntimeError) as err:
        imagenet.weights_file("densenet121")
    msg = str(err.value)
    assert "https://storage.googleapis.com/tensorflow/keras-applications/densenet/" in msg
    assert str(keras_home / "models" / "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5") in msg
    with pytest.raises(ValueError, match="no ImageNet weights for 'lenet5'.*vgg16"):
        imagenet.weights_file("lenet5")
