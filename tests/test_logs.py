"""Quiet logs: native (C++) output is captured and replayed, never lost."""

import logging
import os
import subprocess
import sys

import pytest

from cnnzoo import logs


def test_native_output_is_hidden_and_replayed_at_debug(capfd, caplog, monkeypatch):
    monkeypatch.delenv(logs.LEVEL_ENV, raising=False)
    with caplog.at_level(logging.DEBUG, logger="cnnzoo.logs"), logs.native_output("converter"):
        os.write(1, b"fully_quantize: 0\n")
        os.write(2, b"INFO: Created delegate\n")
    out, err = capfd.readouterr()
    assert "fully_quantize" not in out and "Created delegate" not in err
    (record,) = caplog.records
    assert record.levelno == logging.DEBUG and "fully_quantize: 0" in record.getMessage()


def test_native_output_of_a_failure_becomes_a_warning(caplog, monkeypatch):
    monkeypatch.delenv(logs.LEVEL_ENV, raising=False)
    with pytest.raises(RuntimeError), caplog.at_level(logging.DEBUG, logger="cnnzoo.logs"):
        with logs.native_output("converter"):
            os.write(2, b"error: op not supported\n")
            raise RuntimeError("conversion failed")
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and "op not supported" in record.getMessage()


@pytest.mark.parametrize("level, expected", [("INFO", "3"), ("DEBUG", "0")])
def test_tensorflow_log_level_is_set_on_import(level, expected):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = subprocess.run([sys.executable, "-c", "import cnnzoo, os; "
                          "print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"],
                         env={**env, logs.LEVEL_ENV: level}, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == expected
