# The README's commands. `run` and `test` create .venv on first use and reinstall only when
# pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)
export TF_CPP_MIN_LOG_LEVEL ?= 2
MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlflow.db
PORT ?= 5000

.PHONY: setup run test ui bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: setup
	$(BIN)/dvc repro
	@echo "Report: reports/leaderboard.md (CSV: reports/leaderboard.csv). Browse runs with: make ui"

test: setup
	$(BIN)/python -m pytest -q

ui: setup
	@echo "MLflow UI on http://127.0.0.1:$(PORT) (store: $(MLFLOW_TRACKING_URI))"
	$(BIN)/mlflow ui --workers 1 --host 127.0.0.1 --port $(PORT) --backend-store-uri $(MLFLOW_TRACKING_URI)

bench: setup
	$(BIN)/dvc repro augment
	$(BIN)/cnnzoo bench data

lint: setup
	$(BIN)/ruff check src pipelines tests

clean:
	rm -rf $(VENV) .cache
