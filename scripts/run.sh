#!/usr/bin/env bash
# Start the web server (daphne) and the allocator, which starts the default pool's node
# (a worker, BATCHSITE_WORKER_SLOTS slots) and the nodes of every pool made since; Ctrl-C
# stops them all. Workers sandbox their tasks (bubblewrap); where that cannot be had they
# still start (--allow-unconfined), and say so loudly: a first run never fails for want of it.
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
echo "  pools:       the default pool 'local' has one node; 'az batch pool resize' (or a new pool) starts more"
echo "  Ctrl-C stops the server, the allocator and its nodes."
echo

$PY -m daphne -b "$HOST" -p "$PORT" batchsite.asgi:application &
web=$!
$PY manage.py allocator --allow-unconfined --worker-arg=--grace=5 &
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
