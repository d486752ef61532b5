#!/usr/bin/env bash
# Start the web server (daphne) and one worker; Ctrl-C stops both.
# The worker sandboxes its tasks (bubblewrap); where that cannot be had it still
# starts (--allow-unconfined), and says so loudly: a first run never fails for want of it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
HOST=${BATCHSITE_HOST:-127.0.0.1}
PORT=${BATCHSITE_PORT:-8000}

echo
echo "Batchsite"
$PY manage.py ensure_admin
echo "  dashboard:   http://$HOST:$PORT/"
echo "  admin:       http://$HOST:$PORT/admin/"
echo "  Batch API:   http://$HOST:$PORT/batch  (the account endpoint: azure-batch SDK / az batch with the"
echo "               account name and key above, or curl -H 'Authorization: Token ...' http://$HOST:$PORT/batch/jobs)"
echo "  demo job:    $PY manage.py demo   (in another terminal: a few hundred tasks to watch run)"
echo "  Ctrl-C stops the server and the worker."
echo

$PY -m daphne -b "$HOST" -p "$PORT" batchsite.asgi:application &
web=$!
$PY manage.py worker --name "${BATCHSITE_WORKER_NAME:-$(hostname)-worker}" --slots "${BATCHSITE_WORKER_SLOTS:-2}" --grace 5 \
  --allow-unconfined &
worker=$!

stopped=0
stop() {
  # Ctrl-C runs this from the trap, and again when `wait -n` below returns: once is enough.
  [ "$stopped" = 1 ] && return
  stopped=1
  trap - INT TERM
  kill -TERM "$web" "$worker" 2>/dev/null || true
  wait "$web" "$worker" 2>/dev/null || true
  echo "Batchsite stopped."
}
trap stop INT TERM
# Whichever ends first (or Ctrl-C) stops the other.
wait -n "$web" "$worker" || true
stop
