# Sourced by the install-*.sh scripts: `apt_ready` decides whether apt can install without
# asking anything (as root, or with passwordless sudo; CNNZOO_NO_APT=1 never calls it) and sets
# `why` when it cannot; `apt_install PKG...` installs with bounded time, never prompting (no TTY
# in CI), updating the package lists once if the first try fails; `apt_log` holds its output.
# Only bash builtins until apt is used: the tests run these with an empty PATH.
apt_log=/dev/null
sudo=()

apt_ready() {
  if [ "${CNNZOO_NO_APT:-0}" != "0" ]; then why="CNNZOO_NO_APT is set"; return 1; fi
  if ! command -v apt-get >/dev/null 2>&1; then why="no apt-get on this machine"; return 1; fi
  if [ "${EUID:-$(id -u)}" -eq 0 ]; then
    sudo=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    why="installing it needs root or passwordless sudo"; return 1
  fi
}

_apt() {
  timeout 600 "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=120 -y -qq "$@" </dev/null >>"$apt_log" 2>&1
}

# The package lists may be stale or empty on a fresh machine: update once if the first try fails.
apt_install() {
  apt_log=$(mktemp)
  trap 'rm -f "$apt_log"' EXIT
  _apt install --no-install-recommends "$@" || { _apt update && _apt install --no-install-recommends "$@"; }
}
