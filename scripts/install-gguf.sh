#!/usr/bin/env bash
# GGUF export: llama.cpp's own converter and quantizer, both from one pinned package (requirements-gguf.txt).
#   - llama-cpp-python is built from source (PyPI has no Linux wheel): about 7.3 CPU-minutes (13 min wall on a
#     busy shared 2-core machine, ~4 min on 2 idle cores). Skipped when the pinned version is already installed.
#   - llama.cpp's convert_hf_to_gguf.py (+ its conversion/ and gguf-py/ packages) is not installed by pip: it is
#     copied from the same source package into <venv>/share/llama.cpp, where medcot_ui/publish/gguf.py looks for it.
#   - `make run` does not run this: the app's first GGUF export does (medcot_ui/publish/gguf_build.py), with
#     MEDCOT_GGUF_PROGRESS=1 so pip prints the compiler's [n/m] steps for its progress bar. `make test` runs it.
# Usage: scripts/install-gguf.sh [python]   (default: .venv/bin/python; MEDCOT_LLAMA_CPP_DIR overrides where the
# converter goes, as it does for the app)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
VERSION=$(sed -n 's/^llama-cpp-python==\([0-9.]*\).*/\1/p' requirements-gguf.txt)
DEST=${MEDCOT_LLAMA_CPP_DIR:-$("$PY" -c 'import sys; print(sys.prefix)')/share/llama.cpp}
VERBOSITY=-q
[ "${MEDCOT_GGUF_PROGRESS:-}" = 1 ] && VERBOSITY=-v
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$PY" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$WORK"
SDIST="$WORK/llama_cpp_python-$VERSION.tar.gz"
if [ "$("$PY" -c 'import importlib.metadata as m; print(m.version("llama_cpp_python"))' 2>/dev/null)" != "$VERSION" ]; then
  # LLAVA_BUILD=OFF: the multimodal library (mtmd) is not needed for text models; skip building it.
  CMAKE_ARGS="${CMAKE_ARGS:-} -DLLAVA_BUILD=OFF" "$PY" -m pip install "$VERBOSITY" "llama-cpp-python==$VERSION"
fi
"$PY" -m pip install -q "$(grep '^sentencepiece==' requirements-gguf.txt)"
tar -xzf "$SDIST" -C "$WORK" "llama_cpp_python-$VERSION/vendor/llama.cpp/convert_hf_to_gguf.py" \
  "llama_cpp_python-$VERSION/vendor/llama.cpp/conversion" "llama_cpp_python-$VERSION/vendor/llama.cpp/gguf-py" \
  "llama_cpp_python-$VERSION/vendor/llama.cpp/LICENSE"
rm -rf "$DEST"
mkdir -p "$(dirname "$DEST")"
mv "$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp" "$DEST"
echo "GGUF export ready: llama-cpp-python $VERSION, converter in $DEST"
