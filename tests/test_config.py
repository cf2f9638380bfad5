from pathlib import Path

import pytest
import yaml

from cnnzoo import config
from tests.conftest import ROOT


def raw_params():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_shipped_params_files_are_valid():
    p = config.load(ROOT / "params.yaml")
    assert p.data.source == "fashion_mnist"
    assert config.load(ROOT / "tests" / "tiny_params.yaml").pretrain.epochs == 1


def test_the_default_trains_every_classification_family_of_the_registry():
    """The comparison the product promises: one representative of each family the registry has
    (the lectures' own small networks aside), each with CPU-sized settings under `models:`."""
    from cnnzoo.models import get_entry, list_models

    p = config.load(ROOT / "params.yaml")
    families = {get_entry(name).family for name in list_models()} - {"lecture"}
    assert {get_entry(a).family for a in p.base.archs} == families
    assert set(p.base.archs) <= set(p.models)


def test_unknown_architecture_lists_known_ones():
    raw = raw_params()
    raw["base"]["archs"] = ["lenet5", "resnet9000"]
    known = r"known: alexnet, alexnet_cifar, densenet121.*lenet5"
    with pytest.raises(config.ConfigError, match=r"base\.archs.*resnet9000.*" + known):
        config.parse(raw)


def test_unknown_key_is_named():
    raw = raw_params()
    raw["pretrain"]["epoch"] = 3
    with pytest.raises(config.ConfigError, match=r"pretrain\.epoch: unknown key"):
        config.parse(raw)


def test_wrong_type_is_named():
    raw = raw_params()
    raw["transfer"]["batch_size"] = "big"
    with pytest.raises(config.ConfigError, match=r"transfer\.batch_size"):
        config.parse(raw)


def test_unknown_model_setting_and_overlapping_tasks():
    raw = raw_params()
    raw["models"]["lenet5"] = {"depth": 3}
    with pytest.raises(config.ConfigError, match=r"models\.lenet5.*depth"):
        config.parse(raw)
    raw = raw_params()
    raw["data"]["task_a_classes"], raw["data"]["task_b_classes"] = [0, 2], [0, 1]
    with pytest.raises(config.ConfigError, match="overlap on \\[0\\]"):
        config.parse(raw)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(config.ConfigError, match="not found"):
        config.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: [unclosed")
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        config.load(bad)


@pytest.mark.slow
def test_cli_check_and_models(capsys, tmp_path):
    from cnnzoo.cli import main

    assert main(["check", str(ROOT / "params.yaml")]) == 0
    assert "archs lenet5, alexnet" in capsys.readouterr().out
    bad = tmp_path / "p.yaml"
    bad.write_text(yaml.safe_dump({**raw_params(), "extra": 1}))
    assert main(["check", str(bad)]) == 2
    assert "extra: unknown key" in capsys.readouterr().err
    assert main(["models", "--input-size", "32", "--channels", "1", "--num-classes", "10"]) == 0
    out = capsys.readouterr().out
    assert "lenet5" in out and "61,706" in out and "416,520" in out


def test_cnnzoo_run_refuses_bad_params_before_dvc_starts(capsys, tmp_path, monkeypatch):
    """An unknown key fails `cnnzoo run` even when DVC would have nothing to rerun: one line
    (the one `cnnzoo check` prints), exit 2, and no DVC (no .dvc folder here to run in)."""
    from cnnzoo.cli import main

    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(yaml.safe_dump(raw_params()) + "\nfoo: 1\n")
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert err == "params.yaml is invalid: foo: unknown key (not allowed here)\n"
    assert main(["check"]) == 2
    assert capsys.readouterr().err == err


def test_data_source_validation():
    raw = raw_params()
    raw["data"]["source"] = "imagenet"
    with pytest.raises(config.ConfigError, match="unknown source 'imagenet'; known: fashion_mnist"):
        config.parse(raw)
    raw["data"]["source"] = "folder"
    with pytest.raises(config.ConfigError, match="needs data.path"):
        config.parse(raw)
    raw["data"]["path"] = "data/images"
    # A class folder has no scenes: `check` names the keys to change before any training.
    with pytest.raises(config.ConfigError, match=r"^params is invalid: data.source 'folder' is a "
                       r"class folder.*pipelines.segment: \[\] and pipelines.detect: \[\]"):
        config.parse(raw)
    raw["pipelines"] = {"segment": [], "detect": []}
    assert config.parse(raw).pipelines.selected() == ["classify", "verify"]
    assert config.parse(raw).data.path == "data/images"
    raw["data"]["path"] = str(Path.cwd() / "data" / "images")  # absolute, inside the project
    assert config.parse(raw).data.path == raw["data"]["path"]
    raw["augment"]["effect_arch"] = "nopenet"
    with pytest.raises(config.ConfigError, match="effect_arch.*nopenet"):
        config.parse(raw)


def test_pipelines_are_a_choice_checked_against_each_other():
    raw = raw_params()
    assert config.parse(raw).pipelines.selected() == ["classify", "segment", "detect", "verify"]
    raw["pipelines"] = {"segment": [], "detect": ["yolo_v1"]}
    with pytest.raises(config.ConfigError, match="pipelines.detect needs the scenes"):
        config.parse(raw)
    raw["pipelines"] = {"segment": ["unet"], "detect": ["yolo"]}
    with pytest.raises(config.ConfigError, match=r"pipelines.detect: \['yolo'\] is not \[\] or "
                       r"\[yolo_v1\]"):
        config.parse(raw)
    # A backbone outside base.archs matters only when its pipeline runs.
    raw["pipelines"] = {"segment": ["unet"], "detect": [], "verify": []}
    raw["base"]["archs"] = ["lenet5"]
    raw["detect"]["backbone"] = raw["verify"]["backbone"] = "resnet20"
    raw["segment"]["encoder"] = "lenet5"
    assert config.parse(raw).pipelines.selected() == ["classify", "segment"]
    raw["segment"]["encoder"] = "vgg11"  # read by the segment stage, whatever segment.init
    with pytest.raises(config.ConfigError, match="segment.encoder 'vgg11' is not in base.archs"):
        config.parse(raw)
    raw["segment"]["init"] = "plain"
    with pytest.raises(config.ConfigError, match="segment.encoder 'vgg11' is not in base.archs"):
        config.parse(raw)
    raw["segment"]["encoder"] = "lenet5"
    raw["pipelines"]["verify"] = ["siamese"]
    with pytest.raises(config.ConfigError, match="verify.init 'pretrain'.*resnet20"):
        config.parse(raw)


def test_per_arch_settings_name_known_architectures():
    raw = raw_params()
    raw["pretrain"]["per_arch"]["nopenet"] = {"epochs": 1}
    with pytest.raises(config.ConfigError, match=r"unknown architecture\(s\) \['nopenet'\]"):
        config.parse(raw)
    raw["pretrain"]["per_arch"] = {"lenet5": {"weights": "imagenet"}}  # not per architecture
    with pytest.raises(config.ConfigError, match=r"per_arch.lenet5: unknown key\(s\) \['weights'\]"):
        config.parse(raw)


def test_segmentation_detection_and_verification_settings_are_checked():
    raw = raw_params()
    raw["segment"]["arch"] = "lenet5"
    with pytest.raises(config.ConfigError, match="unknown segmentation model 'lenet5'; known: unet"):
        config.parse(raw)
    raw = raw_params()
    raw["verify"]["backbone"] = "vgg16"  # a classifier, but not pretrained by this pipeline
    with pytest.raises(config.ConfigError, match="pretrain@vgg16.*not in base.archs.*init: scratch"):
        config.parse(raw)
    raw["verify"]["init"] = "scratch"
    assert config.parse(raw).verify.backbone == "vgg16"
    raw["verify"]["backbone"] = "unet"
    with pytest.raises(config.ConfigError, match=r"verify\.backbone.*unknown architecture"):
        config.parse(raw)
    raw = raw_params()
    raw["detect"]["arch"] = "resnet20"
    with pytest.raises(config.ConfigError, match="unknown detection model 'resnet20'; known: yolo_v1"):
        config.parse(raw)
    raw = raw_params()
    raw["detect"]["backbone"] = "resnet26"
    with pytest.raises(config.ConfigError, match="detect.init 'pretrain' starts from "
                                                 "pretrain@resnet26.*not in base.archs"):
        config.parse(raw)
    raw["detect"]["init"] = "scratch"
    assert config.parse(raw).detect.backbone == "resnet26"
    raw["models"]["yolo_v1"]["cells"] = 7
    with pytest.raises(config.ConfigError, match=r"models.yolo_v1: unknown setting\(s\) \['cells'\]"):
        config.parse(raw)
    raw = raw_params()
    raw["segment"]["data"]["min_items"] = 5
    with pytest.raises(config.ConfigError, match="min_items=5 is more than max_items=4"):
        config.parse(raw)


@pytest.mark.parametrize("path, why", [("../photos", "leaves its folder with '..'"),
                                       ("data/../../photos", "leaves its folder with '..'"),
                                       ("/home/me/photos", "is outside the project")])
def test_paths_from_params_stay_inside_the_project(path, why):
    """A params value that becomes a path cannot point a stage outside the project."""
    raw = raw_params()
    raw["data"].update(source="folder", path=path)
    with pytest.raises(config.ConfigError, match=rf"data.path: .*{why}.*ln -s <folder> data/"):
        config.parse(raw)
    raw = raw_params()
    raw["segment"] = {"data": {"source": "folder", "path": path, "classes": ["bg", "a"]}}
    with pytest.raises(config.ConfigError, match=rf"segment.data.path: .*{why}"):
        config.parse(raw)
