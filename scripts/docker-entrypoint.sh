#!/usr/bin/env bash
# The container's start command: keep every download cache inside the data directory (MEDCOT_HOME), so models
# fetched once survive a restart when that directory is persistent, then hand PID 1's signals to the app.
set -euo pipefail
: "${MEDCOT_HOME:=/data/medcot}"
export MEDCOT_HOME
export HF_HOME="${HF_HOME:-$MEDCOT_HOME/cache/huggingface}"
export TORCH_HOME="${TORCH_HOME:-$MEDCOT_HOME/cache/torch}"
export TRITON_CACHE_DIR="${TRITON_CACHE_DIR:-$MEDCOT_HOME/cache/triton}"
export XDG_CACHE_HOME="${XDG_CACHE_HOME:-$MEDCOT_HOME/cache}"
export WANDB_DIR="${WANDB_DIR:-$MEDCOT_HOME}"
mkdir -p "$MEDCOT_HOME" "$HF_HOME" "$TORCH_HOME" "$TRITON_CACHE_DIR"
exec python app.py "$@"
