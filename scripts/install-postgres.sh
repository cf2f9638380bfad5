#!/usr/bin/env bash
# Installs Debian's PostgreSQL server (package postgresql) for `make tracking-server` and its test
# (tests/test_tracking_server.py) when it is missing and apt can install it without asking
# anything (scripts/apt.sh). Otherwise it prints one line and exits 0: that test then skips,
# naming the reason. Used by `make tracking-server` and `make test` (hence `.ci/run`).
set -u
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null && exit 0

hint() {
  echo "cnnzoo: PostgreSQL not installed ($1); the tracking-server test will skip." \
       "Provide it with 'sudo apt-get install postgresql'."
  exit 0
}

source "${0%/*}/apt.sh"
apt_ready || hint "$why"
echo "cnnzoo: installing postgresql with apt-get (the team tracking server's database) ..."
if apt_install postgresql && compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then
  echo "cnnzoo: $(ls -d /usr/lib/postgresql/*/ | tail -n 1) installed"
  exit 0
fi
hint "apt-get failed: $(tail -n 1 "$apt_log")"
