#!/usr/bin/env bash
# Installs the embedded default dataset (Debian package dataset-fashion-mnist) when it is missing
# and apt can install it without asking anything: as root, or with passwordless sudo. Otherwise it
# prints one line saying how to provide the data and exits 0, so set-up goes on and the download
# stage tries $CNNZOO_DATA_MIRROR and the canonical URLs. Never prompts (no TTY in CI), and every
# apt call is bounded in time. Used by `make setup` (hence `make run`, `make test`, `.ci/run`).
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

[ "${CNNZOO_NO_APT:-0}" != "0" ] && hint "CNNZOO_NO_APT is set"
command -v apt-get >/dev/null 2>&1 || hint "no apt-get on this machine"
if [ "${EUID:-$(id -u)}" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  hint "installing it needs root or passwordless sudo"
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
apt() {
  timeout 600 "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=120 -y -qq "$@" </dev/null >>"$log" 2>&1
}
echo "cnnzoo: installing $pkg (Fashion-MNIST, 30 MB) with apt-get ..."
# The package lists may be stale or empty on a fresh machine: update once if the first try fails.
if apt install --no-install-recommends "$pkg" \
   || { apt update && apt install --no-install-recommends "$pkg"; }; then
  [ -d "$dir" ] && { echo "cnnzoo: $pkg installed ($dir)"; exit 0; }
  hint "$pkg installed but $dir is still missing"
fi
hint "apt-get failed: $(tail -n 1 "$log")"
