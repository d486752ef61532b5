#!/usr/bin/env bash
# The CLI tests run the real `az batch` (azure-cli, ~730 MB with its dependencies,
# ~90 s to install). It is not a project dependency: it gets its own virtualenv,
# made once and kept in a cache folder (CI keeps it between runs). Where it cannot
# be installed, the CLI tests skip and say why.
set -uo pipefail
VERSION=${BATCHSITE_AZURE_CLI_VERSION:-2.91.0}
VENV=${BATCHSITE_AZURE_CLI_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/batchsite/azure-cli-$VERSION}
PYTHON=${PYTHON:-python3}
if [ -x "$VENV/bin/az" ]; then
  exit 0
fi
echo "installing azure-cli $VERSION for the CLI tests into $VENV (once, ~90 s)..."
rm -rf "$VENV"
if ! { "$PYTHON" -m venv "$VENV" && "$VENV/bin/python" -m pip install --quiet --upgrade pip \
        && "$VENV/bin/python" -m pip install --quiet "azure-cli==$VERSION"; }; then
  echo "note: azure-cli could not be installed: the CLI tests will be skipped" >&2
  rm -rf "$VENV"
fi
exit 0
