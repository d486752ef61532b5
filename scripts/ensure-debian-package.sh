#!/usr/bin/env bash
# ensure-debian-package.sh COMMAND PACKAGE WITHOUT
# Install Debian's PACKAGE where COMMAND is missing and we can (apt-get, as root or
# by sudo without a password); where we cannot, say WITHOUT (what then happens) and
# go on: a missing package never fails `make run` or `make test`.
#   bubblewrap: workers sandbox tasks with it (nodes/sandbox.py)
#   chromium:   the browser tests drive it (never `playwright install`, a CDN download)
set -uo pipefail
COMMAND=$1 PACKAGE=$2 WITHOUT=$3
if [ -x "$COMMAND" ] || command -v "$COMMAND" >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: no $PACKAGE and no apt-get to install it: $WITHOUT" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "note: no $PACKAGE and no root to install it (apt-get install $PACKAGE): $WITHOUT" >&2
    exit 0
  fi
fi
echo "installing Debian's $PACKAGE (once)..."
if ! $SUDO apt-get install -y -qq "$PACKAGE" >/dev/null 2>&1; then
  if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "$PACKAGE" >/dev/null; }; then
    echo "note: apt-get install $PACKAGE failed: $WITHOUT" >&2
  fi
fi
exit 0
