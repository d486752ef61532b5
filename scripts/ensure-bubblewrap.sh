#!/usr/bin/env bash
# Workers run every task in a bubblewrap sandbox (tasks/sandbox.py). Install Debian's
# bubblewrap where we can; where we cannot, say so: `make run` then starts its worker
# unconfined (with a warning on screen), and the suite's containment tests skip.
set -uo pipefail
if command -v "${BATCHSITE_BWRAP:-bwrap}" >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: no bubblewrap and no apt-get to install it: tasks cannot be sandboxed on this machine" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "note: no bubblewrap and no root to install it (apt-get install bubblewrap): tasks cannot be sandboxed" >&2
    exit 0
  fi
fi
echo "installing Debian's bubblewrap, the sandbox tasks run in (once)..."
if ! $SUDO apt-get install -y -qq bubblewrap >/dev/null 2>&1; then
  if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq bubblewrap >/dev/null; }; then
    echo "note: apt-get install bubblewrap failed: tasks cannot be sandboxed on this machine" >&2
  fi
fi
exit 0
