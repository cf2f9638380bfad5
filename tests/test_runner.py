"""`cnnzoo run` (make run): the failed stage and its cause come last; stages report to it."""

import json
import subprocess
import sys

import pytest
import yaml

from cnnzoo.stages.common import run_stage
from cnnzoo.tools import runner
from tests.conftest import ROOT, copy_project

pytestmark = pytest.mark.e2e


def test_failed_stage_is_named_on_the_last_line(tmp_path):
    params = yaml.safe_load((ROOT / "tests" / "tiny_params.yaml").read_text())
    params["data"].update(source="folder", path="data/no-such-folder")
    params["pipelines"].update(segment=[], detect=[])
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(params))
    root, env = copy_project(tmp_path / "project", params=tmp_path / "bad.yaml")
    out = subprocess.run([sys.executable, "-m", "cnnzoo.cli", "run"], cwd=root, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("cnnzoo: pipeline FAILED at stage 'download' after ")
    assert "no-such-folder" in last and "Traceback" not in out.stderr
    assert "Leaderboard" not in out.stdout


@pytest.fixture
def failure_file(tmp_path, monkeypatch):
    path = tmp_path / "failure.json"
    monkeypatch.setenv(runner.FAILURE_ENV, str(path))
    return path


def _fails(params, **kwargs):
    raise RuntimeError("disk full\nsecond line")


def _buggy(params, **kwargs):
    raise TypeError("unsupported operand")


def _works(params, **kwargs):
    pass


def test_run_stage_records_expected_failure_with_dvc_stage_name(failure_file):
    with pytest.raises(SystemExit) as exit_:
        run_stage(_fails, params=str(ROOT / "params.yaml"), stage="transfer", arch="lenet5")
    assert exit_.value.code == 1
    assert json.loads(failure_file.read_text()) == {"stage": "transfer@lenet5",
                                                    "cause": "RuntimeError: disk full"}
    summary = runner._summary_failed(failure_file, 1, 75)
    assert summary == ("cnnzoo: pipeline FAILED at stage 'transfer@lenet5' after 1 min 15 s: "
                       "RuntimeError: disk full")


def test_run_stage_records_a_bug_and_keeps_its_traceback(failure_file):
    with pytest.raises(TypeError):
        run_stage(_buggy, params=str(ROOT / "params.yaml"), arch="vgg11")
    assert json.loads(failure_file.read_text())["stage"] == "_buggy@vgg11"


def test_run_stage_success_clears_the_record(failure_file):
    run_stage(_works, params=str(ROOT / "params.yaml"))
    assert not failure_file.exists()


def test_summaries_for_a_killed_stage_and_a_dvc_error(tmp_path):
    killed = tmp_path / "f.json"
    killed.write_text(json.dumps({"stage": "pretrain@vgg11"}))
    assert "stage 'pretrain@vgg11'" in runner._summary_failed(killed, 1, 3)
    assert "without a Python error" in runner._summary_failed(killed, 1, 3)
    assert "outside any stage" in runner._summary_failed(tmp_path / "none.json", 255, 3)


def test_leaderboard_path_comes_from_dvc_yaml():
    assert runner.leaderboard_csv(ROOT) == ROOT / "reports" / "leaderboard.csv"


def test_cnnzoo_run_reproduces_every_stage_but_the_slow_sizes_and_robustness():
    """`cnnzoo run` reproduces DEFAULT_TARGETS: they must need every stage of dvc.yaml except
    `sizes` and `robustness`, which stay off `make run`'s path (`make sizes`, `make
    robustness`)."""
    import networkx as nx
    from dvc.repo import Repo

    graph = Repo(str(ROOT)).index.graph  # edges point from a stage to the stages it needs
    by_name = {stage.addressing: stage for stage in graph.nodes}
    needed = set(runner.DEFAULT_TARGETS)
    for target in runner.DEFAULT_TARGETS:
        needed |= {s.addressing for s in nx.descendants(graph, by_name[target])}
    assert set(by_name) - needed == {"sizes", "robustness"}
