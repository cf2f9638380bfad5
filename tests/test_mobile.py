"""Mobile export: the four TFLite variants, the parity gate, float-op listing, latency, the
model card and `cnnzoo predict` on image files, the @mobile pick, the deployment sizes."""

import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from cnnzoo import cli
from cnnzoo.config import ExportConfig, SizesConfig
from cnnzoo.deploy import convert, parity, sizes
from cnnzoo.files import read_csv
from cnnzoo.models import create_model
from cnnzoo.reporting import leaderboard, sizes_table


@pytest.fixture(scope="module")
def images():
    """Class-dependent bars on 28x28 noise, padded to 32x32 as the pipeline pads them."""
    rng = np.random.default_rng(0)
    y = np.arange(200) % 5
    raw = rng.integers(0, 60, size=(200, 28, 28), dtype=np.uint8)
    for c in range(5):
        raw[y == c, 3 + 4 * c: 6 + 4 * c, 4:24] = 250
    x = np.pad(raw, ((0, 0), (2, 2), (2, 2)))[..., None].astype(np.float32) / 255.0
    return raw, x, y


@pytest.fixture(scope="module")
def lenet(images):
    """LeNet-5 trained on `images` (seconds), so its predictions follow the bars, not noise."""
    import keras

    keras.utils.set_random_seed(0)
    net = create_model("lenet5", input_shape=(32, 32, 1), num_classes=5)
    net.compile(optimizer=keras.optimizers.Adam(0.003),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    net.fit(images[1], images[2], epochs=8, batch_size=32, verbose=0)
    return net


def test_four_variants_measured_against_keras(lenet, images):
    _, x, y = images
    cfg = ExportConfig(latency_runs=5, latency_threads=[1, 2], int8_scales="auto")
    split = parity.Split(x, y)
    files, result = parity.convert_and_measure(lenet, cfg, x_rep=x[:20], val=split, test=split,
                                               name="lenet5")
    assert set(files) == {*convert.VARIANTS, "onnx"}
    assert set(convert.VARIANTS) == {"float32", "float16", "dynamic_int8", "int8"}
    sizes_ = {v: len(b) for v, b in files.items()}
    assert sizes_["float16"] < 0.6 * sizes_["float32"]
    assert sizes_["int8"] < sizes_["float32"] / 3 and sizes_["dynamic_int8"] < sizes_["float32"] / 3
    keras_classes = parity.keras_classes(lenet, x)
    assert result["keras_accuracy"] == pytest.approx(np.mean(keras_classes == y))
    for variant in convert.VARIANTS:
        r = result[variant]
        assert r["size_bytes"] == sizes_[variant]
        assert r["drop"] == pytest.approx(result["keras_accuracy"] - r["accuracy"])
        assert set(r["latency"]) == {"1t_median_ms", "1t_p90_ms", "2t_median_ms", "2t_p90_ms"}
        assert 0 < r["latency"]["1t_median_ms"] <= r["latency"]["1t_p90_ms"]
    # The float variants are the Keras model: same predictions.
    assert result["float32"]["accuracy"] == result["keras_accuracy"]
    assert result["int8"]["float_ops"] == {}  # LeNet-5 is integer-only
    assert result["int8_scales"] in ("per_tensor", "per_channel")
    assert convert.LiteModel(files["int8"]).inp["dtype"] == np.int8
    assert convert.LiteModel(files["dynamic_int8"]).inp["dtype"] == np.float32


def test_int8_scales_per_channel_is_bigger_than_per_tensor(lenet, images):
    x = images[1][:8]
    channel = convert.convert(lenet, "int8", x, per_channel=True)
    tensor = convert.convert(lenet, "int8", x, per_channel=False)
    assert len(tensor) < len(channel)


def test_float_ops_names_what_stays_float_in_int8():
    """AlexNet's LRN has no int8 kernel: the int8 model keeps it in float and says so."""
    net = create_model("alexnet", input_shape=(32, 32, 1), num_classes=5, small_input=True,
                       width=0.0625)
    x = np.random.default_rng(0).random((4, 32, 32, 1), dtype=np.float32)
    ops = convert.float_ops(convert.convert(net, "int8", x))
    assert ops and "QUANTIZE" not in ops and "DEQUANTIZE" not in ops
    assert "POW" in ops or "SQUARE" in ops  # the LRN's (k + alpha * sum(a^2))^beta
    assert convert.float_ops(convert.convert(net, "float32")) != {}


def test_gate_names_the_variant_and_both_accuracies():
    result = {"keras_accuracy": 0.93,
              **{v: {"accuracy": 0.93, "drop": 0.0} for v in convert.VARIANTS}}
    assert parity.gate_failures(result, 0.01) == []
    result["int8"] = {"accuracy": 0.915, "drop": 0.015}
    (line,) = parity.gate_failures(result, 0.01)
    assert line.startswith("int8 accuracy 0.9150") and "Keras model's 0.9300" in line
    assert "max_drop=0.01" in line


def test_unknown_variant_lists_the_known_ones(lenet):
    with pytest.raises(ValueError, match="float16"):
        convert.convert(lenet, "int4")


@pytest.fixture(scope="module")
def exported(lenet, images, tmp_path_factory):
    """An export folder as the stage writes it: the files, labels.txt and model.json."""
    from cnnzoo.stages.ship import model_card

    _, x, y = images
    root = tmp_path_factory.mktemp("export")
    files = convert.convert_all(lenet, ["float32", "int8"], x[:20])
    # A temperature of 2: `cnnzoo predict` must divide the logits by it.
    result = {"keras_accuracy": 0.5, "test_images": len(y), "temperature": 2.0,
              **{v: {"size_bytes": len(b), "accuracy": 0.5} for v, b in files.items()}}
    meta = {"image_shape": [32, 32, 1], "source_image_shape": [28, 28, 1],
            "task_b": {"names": ["a", "b", "c", "d", "e"]}}

    class P:  # model_card reads params.data.fit only
        class data:
            fit = "pad"

    card = model_card("lenet5", meta, P, result, files)
    for variant, content in files.items():
        (root / card["variants"][variant]["file"]).write_bytes(content)
    (root / "model.json").write_text(json.dumps(card))
    lenet.save(root / "lenet5.keras")
    return root, card


def test_model_card_says_how_to_feed_each_file(exported):
    _, card = exported
    assert card["input"]["shape"] == [32, 32, 1] and card["input"]["source_size"] == [28, 28]
    assert card["input"]["range"] == [0.0, 1.0] and card["classes"][0] == "a"
    assert not {"mlflow_run_id", "source_commit"} & set(card)  # the same model, the same bytes
    assert card["variants"]["float32"]["input_dtype"] == "float32"
    assert card["variants"]["int8"]["input_dtype"] == "int8"
    assert card["variants"]["int8"]["input_scale"] > 0


def _write_images(raw, folder):
    """Grey 28x28 PNGs (the dataset's own size) and the same images as 56x56 colour JPEGs."""
    paths = []
    for i, img in enumerate(raw):
        png = folder / f"img{i}.png"
        Image.fromarray(img, "L").save(png)
        paths.append(png)
    jpg = folder / "big_colour.jpg"
    Image.fromarray(np.repeat(raw[0][..., None], 3, -1), "RGB").resize((56, 56)).save(jpg,
                                                                                     quality=95)
    return paths, jpg


@pytest.mark.parametrize("variant", ["float32", "int8", "keras"])
def test_predict_agrees_with_keras_on_image_files(exported, lenet, images, tmp_path, capsys,
                                                  variant):
    root, _ = exported
    raw, x, _ = images
    pngs, jpg = _write_images(raw[:12], tmp_path)
    model = root / ("lenet5.keras" if variant == "keras" else f"lenet5_{variant}.tflite")
    assert cli.main(["predict", str(model), *map(str, pngs), str(jpg), "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 13 and lines[0].startswith(f"{pngs[0]}: ")
    expected = lenet.predict(x[:12], verbose=0) / 2.0  # the card's temperature
    probs = np.exp(expected - expected.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    names = ["a", "b", "c", "d", "e"]
    tol = 0.05 if variant == "int8" else 1e-3
    for line, p in zip(lines, probs, strict=False):
        label, prob = line.split(": ")[1].split(", ")[0].split()
        assert label == names[int(np.argmax(p))] or variant == "int8"
        assert abs(float(prob) - p[names.index(label)]) < tol
    # Resized from colour and back, the big JPEG stays close to the grey PNG it came from.
    assert lines[-1].split(": ")[1].split()[0] == lines[0].split(": ")[1].split()[0]


def test_predict_bad_input_is_one_line_and_exit_2(exported, tmp_path, capsys):
    root, _ = exported
    good = tmp_path / "ok.png"
    Image.fromarray(np.zeros((28, 28), np.uint8), "L").save(good)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    junk = tmp_path / "lenet5_float32.tflite"
    junk.write_bytes(b"\0" * 64)
    (tmp_path / "model.json").write_text((root / "model.json").read_text())
    broken = tmp_path / "lenet5.keras"
    broken.write_bytes(b"PK\x03\x04 half a zip")
    # A 20000x20000 PNG header: refused before a byte of it is decoded.
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000,
                                                                          8, 0, 0, 0, 0))
                     + _chunk(b"IEND", b""))
    tflite = str(root / "lenet5_float32.tflite")
    cases = [([str(root / "missing.tflite"), str(good)], "missing.tflite: no such file"),
             ([tflite, str(tmp_path / "nope.png")], "no such file"),
             ([tflite, str(text)], "not a readable image"),
             ([str(junk), str(good)], "not a TFLite model"),
             ([str(root / "model.json"), str(good)], "expected a .tflite or .keras"),
             ([str(broken), str(good), "--card", str(root / "model.json")],
              "not a Keras model file (zip expected)"),
             ([str(root), str(good)], "is a folder, not a model file"),
             ([tflite, str(tmp_path)], "is a folder, not an image file"),
             ([tflite, str(bomb)], "20000x20000 = 400,000,000 pixels, over the limit of 100,000,000"),
             ([tflite, str(good), "--max-pixels", "700"], "784 pixels, over the limit of 700"),
             ([tflite, str(good), "-k", "0"], "-k 0: must be between 1 and 5"),
             ([tflite, str(good), "-k", "-1"], "-k -1: must be between 1 and 5"),
             ([tflite, str(good), "-k", "6"], "-k 6: must be between 1 and 5")]
    for args, message in cases:
        assert cli.main(["predict", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_16_bit_and_float_images_predict_as_their_8_bit_originals(exported, images, tmp_path,
                                                                    capsys):
    """PIL's own conversion clips a 16-bit PNG to a few grey levels; predict scales it."""
    root, _ = exported
    raw = images[0][:3]
    files = []
    for i, img in enumerate(raw):
        for kind, pixels in (("8", img), ("16", img.astype(np.uint16) * 257),
                             ("f", img.astype(np.float32) / 255.0)):
            files.append(tmp_path / f"{i}_{kind}.{'tiff' if kind == 'f' else 'png'}")
            Image.fromarray(pixels).save(files[-1])
    assert Image.open(files[1]).mode == "I;16" and Image.open(files[2]).mode == "F"
    assert cli.main(["predict", str(root / "lenet5_float32.tflite"), *map(str, files)]) == 0
    lines = [line.split(": ", 1)[1] for line in capsys.readouterr().out.splitlines()]
    for i in range(len(raw)):
        assert lines[3 * i] == lines[3 * i + 1] == lines[3 * i + 2]


def test_pick_mobile_is_the_smallest_within_tolerance(tmp_path):
    (tmp_path / "export").mkdir()
    for arch, acc, size in (("vgg11", 0.948, 700_000), ("nin", 0.952, 70_000),
                            ("lenet5", 0.920, 60_000)):
        (tmp_path / "export" / f"{arch}.json").write_text(
            json.dumps({"int8": {"accuracy": acc, "size_bytes": size}}))
    archs = ["vgg11", "nin", "lenet5"]
    assert leaderboard.pick_mobile(archs, tmp_path, 0.01) == "nin"
    assert leaderboard.pick_mobile(archs, tmp_path, 0.05) == "lenet5"


def test_sizes_of_a_small_network(tmp_path):
    cfg = SizesConfig(models=["lenet5"], input_size=32, channels=1, num_classes=10)
    (row,) = sizes.measure_all(cfg)
    assert row["params"] == 61_706  # LeNet-5 as in the lecture (tanh, 10 classes)
    assert row["float16_mb"] < 0.6 * row["float32_mb"] and row["int8_mb"] < row["float32_mb"] / 3
    assert row["keras_mb"] > 0 and row["lecture_mb"] == ""
    sizes_table.write([row], tmp_path / "s.csv", tmp_path / "s.md")
    assert read_csv(tmp_path / "s.csv")[0]["model"] == "lenet5"
    rows = [dict(row, model="vgg16", float32_mb="527.8"), dict(row, model="mobilenet_v2",
                                                                int8_mb="3.5")]
    assert sizes_table.headline(rows).endswith("is 151× MobileNet V2 int8 (3.50 MB).")
    assert "| vgg16 | 61,706 |" in sizes_table.to_markdown(rows)


def test_one_converter_for_all_variants_gives_the_bytes_of_fresh_ones(lenet, images):
    x = images[1][:8]
    together = convert.convert_all(lenet, ["int8", "float16", "dynamic_int8", "float32"], x,
                                  per_channel=False)
    for variant, content in together.items():
        assert content == convert.convert(lenet, variant, x, per_channel=False), variant


@pytest.mark.parametrize("variant", ["float32", "int8"])
def test_batched_evaluation_gives_the_per_image_logits(lenet, images, variant):
    """The parity gate runs the shipped batch-1 file with its batch dimension resized."""
    _, x, _ = images
    lite = convert.LiteModel(convert.convert(lenet, variant, x[:20]), num_threads=2)
    one_by_one = np.stack([lite.logits(img) for img in x])
    batched = lite.predict_logits(x, batch_size=64)  # 200 images: 3 full batches + 8 padded
    assert lite._batched(64, x[:8]) is not None
    step = lite.out["quantization"][0] or 1e-4
    np.testing.assert_allclose(batched, one_by_one, atol=2 * step)
    assert (batched.argmax(1) == one_by_one.argmax(1)).all()


def test_int16_activation_repair_is_described_and_served(lenet, images, tmp_path, capsys):
    """An int8 file the export repaired with 16-bit activations: model.json says so (int16
    input, its scale), and `cnnzoo predict` and the MLflow pyfunc feed it int16 and agree with
    Keras."""
    from types import SimpleNamespace

    from cnnzoo.deploy.litert_pyfunc import LiteRTClassifier
    from cnnzoo.stages.ship import model_card

    raw, x, y = images
    with convert.saved_model(lenet) as saved:
        content = convert.int16_activations(saved, x[:20], per_channel=True)
    files = {"int8": content}
    repair = {"float_layers": None, "activations": "int16", "tried": []}
    result = {"keras_accuracy": 0.5, "test_images": len(y), "temperature": 2.0,
              "int8": {"size_bytes": len(content), "accuracy": 0.5, "repair": repair}}
    meta = {"image_shape": [32, 32, 1], "source_image_shape": [28, 28, 1],
            "task_b": {"names": ["a", "b", "c", "d", "e"]}}
    card = model_card("lenet5", meta, SimpleNamespace(data=SimpleNamespace(fit="pad")), result,
                      files)
    entry = card["variants"]["int8"]
    assert entry["input_dtype"] == "int16" and entry["activations"] == "int16"
    assert entry["input_scale"] > 0 and "float_layers" not in entry
    model = tmp_path / entry["file"]
    model.write_bytes(content)
    (tmp_path / "model.json").write_text(json.dumps(card))
    logits = lenet.predict(x[:6], verbose=0) / 2.0  # the card's temperature
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    pngs, _ = _write_images(raw[:6], tmp_path)
    assert cli.main(["predict", str(model), *map(str, pngs), "-k", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for line, p in zip(lines, probs, strict=True):
        label, prob = line.split(": ")[1].split()
        assert label == card["classes"][int(np.argmax(p))] and abs(float(prob) - p.max()) < 0.01
    served = LiteRTClassifier()
    served.load_context(SimpleNamespace(artifacts={"model.json": str(tmp_path / "model.json"),
                                                   "int8": str(model)}))
    assert np.abs(np.stack([served._one(img) for img in x[:6]]) - probs).max() < 0.01
