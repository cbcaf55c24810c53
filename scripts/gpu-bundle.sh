#!/usr/bin/env bash
# Wheels a bare GPU machine (no network, torch/transformers/peft already there; see docs/BENCHMARKS.md) needs to
# run `scripts/gpu-check.sh`: the "train" bundle of ../shared/gpu/fetch-wheels.sh with our pins on top
# (trl held at 1.14.2 as in requirements.txt; the run store's sqlmodel/SQLAlchemy/alembic), kept under the
# 64 MiB a device call carries. Run from the project root; writes .whl/ (git-ignored).
set -euo pipefail
dest=.whl
fetch=${FETCH_WHEELS:-../shared/gpu/fetch-wheels.sh}
bash "$fetch" train "$dest"
plat="--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
rm -f "$dest"/trl-*.whl "$dest"/hf_transfer-*.whl  # trl: our pin below; hf_transfer: no downloads there
# shellcheck disable=SC2086
pip download -q --no-deps $plat --platform any -d "$dest" trl==1.14.2 sqlmodel==0.0.50 SQLAlchemy==2.1.9 \
  alembic==1.20.1 Mako==1.4.3 pytest-timeout==2.4.0
size=$(du -sb "$dest" | cut -f1)
echo "$dest: $((size / 1048576)) MiB (a call carries at most 64 MiB with the working tree)"
[ "$size" -lt $((62 * 1048576)) ] || { echo "too large for one device call" >&2; exit 1; }
