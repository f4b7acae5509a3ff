#!/usr/bin/env bash
# The test command: installs what cargo cannot (redis-server, from Debian, when missing; the Redis
# tier's tests start their own on a free loopback port), then runs every test of the workspace's
# default members. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  echo "== installing redis-server (Debian package) for the Redis tier's tests"
  if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
  else
    SUDO=
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi
redis-server --version

exec cargo test --locked "$@"
