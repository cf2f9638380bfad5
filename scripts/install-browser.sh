#!/usr/bin/env bash
# Installs Debian's Chromium and ChromeDriver (packages chromium, chromium-driver) for the MLflow
# UI browser test (tests/test_mlflow_ui.py) when they are missing and apt can install them without
# asking anything (scripts/apt.sh). No browser download from elsewhere. Otherwise it prints one line
# and exits 0: that test then skips, naming the reason. Used by `make test` (hence `.ci/run`).
set -u
command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 && exit 0

hint() {
  echo "cnnzoo: Chromium/ChromeDriver not installed ($1); the MLflow UI browser test will skip." \
       "Provide them with 'sudo apt-get install chromium chromium-driver'."
  exit 0
}

source "${0%/*}/apt.sh"
apt_ready || hint "$why"
echo "cnnzoo: installing chromium and chromium-driver with apt-get (for the browser test) ..."
if apt_install chromium chromium-driver && command -v chromedriver >/dev/null 2>&1; then
  echo "cnnzoo: $(chromium --version 2>/dev/null | head -n 1) installed"
  exit 0
fi
hint "apt-get failed: $(tail -n 1 "$apt_log")"
