#!/usr/bin/env bash
# Installs the embedded default dataset (Debian package dataset-fashion-mnist) when it is missing
# and apt can install it without asking anything (scripts/apt.sh). Otherwise it prints one line
# saying how to provide the data and exits 0, so set-up goes on and the download stage tries
# $CNNZOO_DATA_MIRROR and the canonical URLs. Used by `make setup` (hence `make run`, `make test`,
# `.ci/run`).
#
#   CNNZOO_SYSTEM_DATA_DIR  where the package puts the files (default /usr/share/datasets/fashion-mnist)
#   CNNZOO_NO_APT=1         never call apt (just print the hint when the files are missing)
set -u
pkg=dataset-fashion-mnist
dir=${CNNZOO_SYSTEM_DATA_DIR:-/usr/share/datasets/fashion-mnist}
[ -d "$dir" ] && exit 0

hint() {
  echo "cnnzoo: Fashion-MNIST is not installed ($dir missing; $1). Provide it with" \
       "'sudo apt-get install $pkg' or CNNZOO_DATA_MIRROR=<folder or URL>; the download stage" \
       "will otherwise try the canonical URLs."
  exit 0
}

source "${0%/*}/apt.sh"
apt_ready || hint "$why"
echo "cnnzoo: installing $pkg (Fashion-MNIST, 30 MB) with apt-get ..."
if apt_install "$pkg"; then
  [ -d "$dir" ] && { echo "cnnzoo: $pkg installed ($dir)"; exit 0; }
  hint "$pkg installed but $dir is still missing"
fi
hint "apt-get failed: $(tail -n 1 "$apt_log")"
