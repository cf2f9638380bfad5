"""Every bad argument to `cnnzoo` is one line on stderr and exit status 2."""

import pytest

from cnnzoo.cli import main
from tests.conftest import ROOT


@pytest.mark.parametrize("argv, says", [
    (["nosuch"], "invalid choice: 'nosuch'"),
    (["predict"], "the following arguments are required: model, images"),
    (["models", "--channels", "x"], "invalid int value: 'x'"),
    (["models", "nosuchnet"], "unknown model(s) nosuchnet; known: alexnet, "),
    (["check", "nosuch.yaml"], "nosuch.yaml not found"),
])
def test_bad_arguments_get_one_line_and_exit_2(argv, says, capsys):
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err


def test_promote_without_an_export_says_what_to_run(tmp_path, monkeypatch, capsys):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    assert main(["promote", "lenet5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no export of 'lenet5'" in err and "dvc exp apply" in err
