"""Every registered model: tiny forward pass, safe_mode round trip, TFLite conversion of its
small-input form; canonical configurations against the papers' / reference parameter counts."""

import keras
import numpy as np
import pytest

from cnnzoo.deploy import convert
from cnnzoo.models import FEATURES, HEAD, create_model, get_entry, list_models, model_hparams
from tests.conftest import tiered

# Small-input settings per family, so the whole zoo builds and converts in seconds.
SMALL = {
    "lenet": {},
    "alexnet": dict(small_input=True, width=0.125),
    "vgg": dict(width=0.125, fc_units=32),
    "nin": dict(small_input=True, width=0.125),
    "googlenet": dict(small_input=True, width=0.0625),
    "resnet": dict(small_input=True, width=0.125),
    "resnext": dict(small_input=True, width=0.25, groups=4),
    "densenet": dict(small_input=True, growth_rate=4),
    "mobilenet": dict(small_input=True, alpha=0.25),
    "lecture": {},
}
# Already small-input networks, with the settings that keep their tests fast.
CIFAR_SMALL = {"resnet20": dict(width=0.5), "resnet56": dict(width=0.5),
               "densenet_bc_100": dict(growth_rate=4), "alexnet_cifar": dict(width=0.125)}


def small(name):
    settings = CIFAR_SMALL.get(name, SMALL[get_entry(name).family])
    return create_model(name, input_shape=(32, 32, 1), num_classes=7, **settings)


def trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize("name", tiered(list_models()))
def test_small_forward_round_trip_and_tflite(name, tmp_path):
    model = small(name)
    assert model.name == name
    assert model.get_layer(HEAD).units == 7 and model.get_layer(FEATURES) is not None
    x = np.random.default_rng(0).random((2, 32, 32, 1), dtype=np.float32)
    y = model.predict(x, verbose=0)
    assert y.shape == (2, 7) and np.isfinite(y).all()
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(again.predict(x, verbose=0), y, rtol=1e-4, atol=1e-4)
    lite = convert.LiteModel(convert.convert(model, "float32"))
    np.testing.assert_allclose(lite.logits(x[0]), y[0], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("name", tiered(list_models()))
def test_feature_extractor_form(name):
    settings = dict(SMALL[get_entry(name).family]) if name not in CIFAR_SMALL else {}
    model = create_model(name, input_shape=(32, 32, 1), num_classes=3, include_top=False,
                         **settings)
    assert len(model.output.shape) == 2 and model.output.shape[-1] > 0


CANONICAL = {  # trainable parameters at 224×224×3 (AlexNet 227), 1000 classes
    "alexnet": 62_378_344, "vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544,
    "vgg19": 143_667_240, "resnet18": 11_689_512, "resnet34": 21_797_672,
    "resnet50": 25_557_032, "resnet101": 44_549_160, "resnet152": 60_192_808,
    "resnext50_32x4d": 25_028_904, "resnext101_32x8d": 88_791_336,
    "densenet121": 7_978_856, "densenet169": 14_149_480, "densenet201": 20_013_928,
    "mobilenet_v1": 4_231_976, "mobilenet_v2": 3_504_872,
    # NIN: the authors' Caffe ImageNet model (conv1-cccp8), with cccp8 as the dense head.
    "nin": 7_595_176,
    # GoogLeNet: Table 1's layers with biases; per-block weights are checked below.
    "googlenet": 6_998_552,
    # ZFNet: Zeiler & Fergus 2013 Fig. 3's layers, ungrouped, with biases.
    "zfnet": 62_357_608,
    # the using-CNNs lecture's ResNet: the ImageNet stem, 3 basic blocks at each of 64/128/256/512 filters.
    "resnet26": 17_960_232,
}
CIFAR = {"resnet20": 269_722, "resnet56": 853_018, "densenet_bc_100": 769_162,  # 32×32×3, 10
         # the using-CNNs lecture's table with the consistent 4,096-value flatten (1,302,154 with its 1024)
         "alexnet_cifar": 2_875_018}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CANONICAL))
def test_canonical_parameter_counts(name):
    size = 227 if name == "alexnet" else 224
    assert trainable(create_model(name, input_shape=(size, size, 3), num_classes=1000)) == CANONICAL[name]


@pytest.mark.parametrize("name", sorted(CIFAR))
def test_cifar_parameter_counts(name):
    assert trainable(create_model(name, input_shape=(32, 32, 3), num_classes=10)) == CIFAR[name]


def test_lenet5_has_61706_parameters():
    assert trainable(create_model("lenet5", input_shape=(32, 32, 1), num_classes=10)) == 61_706


def test_googlenet_matches_table_1():
    model = create_model("googlenet", input_shape=(224, 224, 3), num_classes=1000)
    assert model.get_layer("inception_3a_output").output.shape[1:] == (28, 28, 256)
    assert model.get_layer("inception_4e_output").output.shape[1:] == (14, 14, 832)
    assert model.get_layer("inception_5b_output").output.shape[1:] == (7, 7, 1024)
    # Table 1's output depth of every inception block.
    depth = {"3a": 256, "3b": 480, "4a": 512, "4b": 512, "4c": 512, "4d": 528, "4e": 832,
             "5a": 832, "5b": 1024}
    for block, channels in depth.items():
        assert model.get_layer(f"inception_{block}_output").output.shape[-1] == channels
    # Its "params" column (weights without biases, K = 1024) agrees with its channel columns for
    # the first blocks (3a: 159.5K listed 159K; 3b: 379.0K listed 380K) but not for all later
    # rows (4c lists 463K where its own channels give 497.5K), so only those two are checked.
    for block, kparams in {"3a": 159, "3b": 380}.items():
        weights = sum(int(np.prod(lyr.kernel.shape)) for lyr in model.layers
                      if lyr.name.startswith(f"inception_{block}_") and hasattr(lyr, "kernel"))
        assert abs(weights / 1024 - kparams) <= 1, block
    aux = create_model("googlenet", input_shape=(224, 224, 3), num_classes=1000, aux_logits=True)
    assert [o.shape[-1] for o in aux.outputs] == [1000, 1000, 1000]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError,
                       match="unknown model 'vgg99'; known: alexnet, alexnet_cifar, densenet121"):
        create_model("vgg99", input_shape=(32, 32, 1), num_classes=10)
    with pytest.raises(ValueError, match="lenet5: input_shape .* at least 32"):
        create_model("lenet5", input_shape=(28, 28, 1), num_classes=10)
    with pytest.raises(ValueError, match="alexnet: input_shape .* at least 67"):
        create_model("alexnet", input_shape=(32, 32, 3), num_classes=10)
    with pytest.raises(ValueError, match="unknown setting.*depth"):
        create_model("lenet5", input_shape=(32, 32, 1), num_classes=10, depth=3)
    with pytest.raises(ValueError, match="narrower than 1 channel"):
        create_model("resnext50_32x4d", input_shape=(32, 32, 1), num_classes=10, width=0.125)
    assert model_hparams("mobilenet_v2") == {"alpha", "small_input", "bn_momentum", "include_top"}


def test_zfnet_has_figure_3s_maps():
    """Fig. 3 of Zeiler & Fergus 2013 at 224×224×3: 110, 55, 26, 13, 13 and 6 (widths do not
    change the maps, so a narrow build checks them)."""
    model = create_model("zfnet", input_shape=(224, 224, 3), num_classes=1000, width=0.125)
    maps = {n: model.get_layer(n).output.shape[1] for n in
            ("conv1", "pool1", "conv2", "pool2", "conv3", "conv5", "pool5")}
    assert maps == {"conv1": 110, "pool1": 55, "conv2": 26, "pool2": 13, "conv3": 13,
                    "conv5": 13, "pool5": 6}
    assert model.get_layer("conv1").kernel.shape[:2] == (7, 7)
    assert model.get_layer("conv1").strides == (2, 2)
    with pytest.raises(ValueError, match="zfnet: input_shape .* at least 53"):
        create_model("zfnet", input_shape=(52, 52, 3), num_classes=10)


def test_catalogue_matches_the_registry():
    """Params validation reads catalogue.json, not the registry (no TensorFlow import)."""
    from cnnzoo.config import catalogue
    from cnnzoo.models.catalogue import from_registry

    assert catalogue._entries() == from_registry(), (
        "src/cnnzoo/config/catalogue.json is out of date: python -m cnnzoo.models.catalogue")


def test_cnnzoo_check_validates_without_tensorflow():
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import sys; from cnnzoo.cli import main; code = main(['check']); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; sys.exit(code)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("params.yaml is valid")
