#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (never `playwright install`, which
# downloads from a CDN). Install it where we can; where we cannot, the browser
# tests skip and say why.
set -uo pipefail
CHROMIUM=${BATCHSITE_CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ] || command -v "$CHROMIUM" >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: no $CHROMIUM and no apt-get: the browser tests will be skipped" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "note: no $CHROMIUM and no root to install it (apt-get install chromium): the browser tests will be skipped" >&2
    exit 0
  fi
fi
echo "installing Debian's chromium for the browser tests (once)..."
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null; }; then
  echo "note: apt-get install chromium failed: the browser tests will be skipped" >&2
fi
exit 0
