# The README's commands. `run` and `test` create .venv on first use and reinstall only when
# pyproject.toml changes; set-up also installs the embedded dataset when apt can (scripts/).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)
MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlflow.db
PORT ?= 5000

.PHONY: setup run sizes robustness sweep seeds promote test test-fast ui tracking-server bench lint clean docs-images \
	docs-tables

setup: $(STAMP)
	@bash scripts/install-dataset.sh

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# `cnnzoo run` = `dvc repro`, then the leaderboard, the wall time and the `make ui` hint (or
# the failed stage and its cause, last).
run: setup
	@$(BIN)/cnnzoo run

# The lecture's deployment sizes (VGG-16 ... MobileNet V2 at 224x224, random weights): the slow,
# cached `sizes` stage, then the report again with its section. Minutes the first time.
sizes: setup
	@$(BIN)/cnnzoo sizes

# Robustness (after `make run`): every family's Keras model and int8 file on 11 corruptions x 3
# severities of 1,000 test images, the cached `robustness` stage, then the report again with
# mean corruption accuracy (mCA) in the leaderboard. Minutes.
robustness: setup
	@$(BIN)/cnnzoo robustness

# Label sweep over task B's budget (after `make run`): transfer vs scratch at 5, 20, 100 and 1000
# labels per class as DVC experiments (`dvc exp show`); reports/sweep.csv + plots/sweep.png.
# LABELS="5 20" runs a subset.
LABELS ?= 5 20 100 1000
sweep: setup
	@$(BIN)/cnnzoo sweep --labels $(LABELS)

# The spread over seeds (after `make run`): task B's and the other pipelines' stages at SEEDS
# seeds as DVC experiments; reports/seeds.csv (mean, std, range). PRETRAIN=1 retrains task A too.
SEEDS ?= 3
seeds: setup
	@$(BIN)/cnnzoo seeds $(SEEDS) $(if $(PRETRAIN),--pretrain)

# Ship ARCH's export in the workspace (e.g. after `dvc exp apply <experiment>`): a new version of
# cnnzoo-mobile, tagged with its data and metrics, and the @mobile alias. Experiments never do this.
promote: setup
	@test -n "$(ARCH)" || { echo "usage: make promote ARCH=<architecture>"; exit 2; }
	@$(BIN)/cnnzoo promote $(ARCH)

# The browser test's Chromium and ChromeDriver come from Debian's packages where apt can install
# them (scripts/install-browser.sh); the tracking-server test's PostgreSQL likewise (each test skips,
# saying why, where its package cannot be installed).
test: setup
	@bash scripts/install-browser.sh
	@bash scripts/install-postgres.sh
	$(BIN)/python -m pytest -q

# The inner loop: unit tests only (no end-to-end run, no canonical builds; under 3 minutes here).
test-fast: setup
	$(BIN)/python -m pytest -q -m "not e2e and not slow"

# The README's Results pictures from the last `make run` here (docs/images/, small PNGs): the
# leaderboard figure, a filter grid, a Grad-CAM sample and two MLflow UI screenshots.
docs-images: setup
	@bash scripts/install-browser.sh
	$(BIN)/python -m cnnzoo.reporting.docs_images

# The results tables of the README and docs/ from this checkout's last run (after `make run`,
# `make sweep`, `make seeds`): copies its result files into docs/results/ with date, host and
# commit, then rewrites every <!-- table: NAME --> block (tests/test_docs_tables.py checks them).
docs-tables: setup
	$(BIN)/python -m cnnzoo.reporting.docs_tables

ui: setup
	@echo "MLflow UI on http://127.0.0.1:$(PORT) (store: $(MLFLOW_TRACKING_URI))"
	$(BIN)/mlflow ui --workers 1 --host 127.0.0.1 --port $(PORT) --backend-store-uri $(MLFLOW_TRACKING_URI)

# A team's MLflow server: runs in a PostgreSQL cluster of its own (Debian's postgresql, on
# loopback), artifacts in .cache/tracking/artifacts. Others then run
# MLFLOW_TRACKING_URI=http://<this host>:$(PORT) make run  (HOST=0.0.0.0 to listen on the LAN,
# which needs credentials: CREDENTIALS=<KEY=value file> or the environment; AUTH=1 on loopback).
HOST ?= 127.0.0.1
tracking-server: setup
	@bash scripts/install-postgres.sh
	$(BIN)/python -m cnnzoo.tracking.server --host $(HOST) --port $(PORT) \
	  $(if $(AUTH),--auth) $(if $(CREDENTIALS),--credentials $(CREDENTIALS))

# Input pipeline vs training step, then every architecture's training rate next to plain Keras'
# model.fit and the machine's matmul rate (bench/results.md; QUICK=1: about 2 minutes).
bench: setup
	$(BIN)/dvc repro augment
	$(BIN)/cnnzoo bench data
	$(BIN)/cnnzoo bench train $(if $(QUICK),--quick)

lint: setup
	$(BIN)/ruff check src pipelines tests

clean:
	rm -rf $(VENV) .cache
