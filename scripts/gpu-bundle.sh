#!/usr/bin/env bash
# Wheels a bare GPU machine (no network; torch/transformers/peft/pytest-timeout already there, see
# ../shared/gpu/README.md) needs to run the whole app and `scripts/gpu-check.sh`: the "all" bundle of
# ../shared/gpu/fetch-wheels.sh (unsloth, bitsandbytes cut to CUDA 13, trl, datasets, gradio, sqlmodel) with our
# pins on top (trl held at 1.14.2 as in requirements.txt; alembic + Mako for the run database's migrations;
# itsdangerous, which the app imports), kept under the 64 MiB a device call carries with the working tree.
# Run from the project root; writes .whl/ (git-ignored).
set -euo pipefail
dest=.whl
fetch=${FETCH_WHEELS:-../shared/gpu/fetch-wheels.sh}
rm -rf "$dest"
# The fetch script records .whl/ in .git/info/exclude, which a git worktree does not have (.git is a file there);
# .gitignore already ignores .whl/, so that one line is left out.
sed '/\.git\/info\/exclude/d' "$fetch" > "${TMPDIR:-/tmp}/fetch-wheels.sh"
bash "${TMPDIR:-/tmp}/fetch-wheels.sh" all "$dest" >/dev/null 2>&1
plat="--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
rm -f "$dest"/trl-*.whl "$dest"/hf_transfer-*.whl  # trl: our pin below; hf_transfer: no downloads there
# shellcheck disable=SC2086
pip download -q --no-deps $plat --platform any -d "$dest" trl==1.14.2 alembic==1.20.1 Mako==1.4.3 \
  itsdangerous==2.2.0 2>/dev/null
size=$(du -sb "$dest" | cut -f1)
tree=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- | tail -1 | cut -f1)
echo "$dest: $((size / 1048576)) MiB + working tree $((tree / 1048576)) MiB (a device call carries at most 64 MiB)"
[ $((size + tree)) -lt $((63 * 1048576)) ] || { echo "too large for one device call" >&2; exit 1; }
