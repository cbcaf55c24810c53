#!/usr/bin/env bash
# The container's start command: pick the data directory, keep every download cache inside it, then hand PID 1's
# signals to the app. With Docker, /data is a volume (a real disk): the data directory lives there, database
# included. On a Space (SPACE_ID is set), /data is a Storage Bucket mount with no file locking, no place for a
# live SQLite database: the data directory stays on the Space's local disk and the app keeps snapshots and
# finished files on the bucket (MEDCOT_BUCKET_DIR, default /data; see docs/DEPLOY.md).
set -euo pipefail
if [ -n "${SPACE_ID:-}" ]; then
  : "${MEDCOT_HOME:=$HOME/medcot}"
else
  : "${MEDCOT_HOME:=/data/medcot}"
fi
export MEDCOT_HOME
export HF_HOME="${HF_HOME:-$MEDCOT_HOME/cache/huggingface}"
export TORCH_HOME="${TORCH_HOME:-$MEDCOT_HOME/cache/torch}"
export TRITON_CACHE_DIR="${TRITON_CACHE_DIR:-$MEDCOT_HOME/cache/triton}"
export XDG_CACHE_HOME="${XDG_CACHE_HOME:-$MEDCOT_HOME/cache}"
export WANDB_DIR="${WANDB_DIR:-$MEDCOT_HOME}"
mkdir -p "$MEDCOT_HOME" "$HF_HOME" "$TORCH_HOME" "$TRITON_CACHE_DIR"
exec python app.py "$@"
