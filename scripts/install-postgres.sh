#!/usr/bin/env bash
# Debian's PostgreSQL server for the run-store tests (tests/postgres_server.py starts a throwaway one per session).
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then exit 0; fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO apt-get update -q
# The package's own cluster is not needed (the tests make their own); it does create the `postgres` user the
# tests run the server as when they run as root.
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q postgresql
