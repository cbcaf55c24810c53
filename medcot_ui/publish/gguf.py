"""GGUF files for llama.cpp / Ollama, made with llama.cpp's own tools (nothing here writes GGUF itself).

* Conversion: llama.cpp's ``convert_hf_to_gguf.py`` (with its ``conversion/`` package and ``gguf-py``), taken from
  the llama-cpp-python source package of the pinned version by ``scripts/install-gguf.sh``.
* Quantisation (q4_k_m, q8_0): llama.cpp's ``llama_model_quantize``, through llama-cpp-python's bindings.

Both run in child processes (``python -m medcot_ui.publish.gguf convert|quantize``) so a crash in C code cannot take the
app down; their command lines hold only file paths and their environment no Hub token. Where the tools are not
installed, :func:`availability` says so; ``gguf_build`` builds them on the first GGUF export.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medcot_ui.errors import MedcotError
from medcot_ui.redact import child_env

# llama.cpp's file types (enum llama_ftype) for the quantisations we offer, and their file-name suffixes.
QUANTS: dict[str, tuple[int, str]] = {"q4_k_m": (15, "Q4_K_M"), "q8_0": (7, "Q8_0")}
INSTALL_HINT = "run `make install-gguf` (scripts/install-gguf.sh; see docs/PUBLISH.md)"


def tools_dir() -> Path:
    """Where install-gguf.sh put llama.cpp's converter (MEDCOT_LLAMA_CPP_DIR overrides)."""
    return Path(os.environ.get("MEDCOT_LLAMA_CPP_DIR") or Path(sys.prefix) / "share" / "llama.cpp")


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""


def availability() -> Availability:
    """Whether GGUF export can run on this machine, and if not, why and what to do."""
    converter = tools_dir() / "convert_hf_to_gguf.py"
    if not converter.is_file() or not (tools_dir() / "conversion").is_dir():
        return Availability(False, f"GGUF export is off: llama.cpp's converter is not installed on this machine "
                                   f"(looked in {tools_dir()}). To turn it on, {INSTALL_HINT}.")
    if importlib.util.find_spec("llama_cpp") is None:
        return Availability(False, "GGUF export is off: llama.cpp's quantizer (the llama-cpp-python package) is not "
                                   f"installed. To turn it on, {INSTALL_HINT}.")
    return Availability(True)


class GGUFError(MedcotError, RuntimeError):
    """Conversion or quantisation failed; the message says which step and the tool's last words."""


def _run_tool(step: str, args: list[str], log_file: Path | None) -> None:
    cmd = [sys.executable, "-m", "medcot_ui.publish.gguf", *args]
    proc = subprocess.run(cmd, env=child_env(PYTHONUNBUFFERED="1"), capture_output=True, text=True)  # no token
    output = (proc.stdout or "") + (proc.stderr or "")
    if log_file is not None:
        with open(log_file, "a", encoding="utf-8") as fh:
            fh.write(f"$ {step}\n{output}\n")
    if proc.returncode != 0:
        tail = "\n".join(line for line in output.strip().splitlines()[-6:])
        raise GGUFError(f"{step} failed (exit {proc.returncode}): {tail or 'no output'}")


def convert(model_dir: Path, out_file: Path, outtype: str = "auto", log_file: Path | None = None) -> Path:
    """A merged Hugging Face model folder -> one unquantised GGUF file (16-bit unless the model is 32-bit)."""
    _run_tool("converting to GGUF", ["convert", str(model_dir), str(out_file), "--outtype", outtype], log_file)
    return out_file


def quantize(src: Path, dst: Path, quant: str, log_file: Path | None = None) -> Path:
    if quant not in QUANTS:
        raise GGUFError(f"unknown quantisation '{quant}' (choose from {', '.join(QUANTS)})")
    _run_tool(f"quantizing to {quant}", ["quantize", str(src), str(dst), quant], log_file)
    return dst


def file_name(stem: str, quant: str) -> str:
    return f"{stem}-{QUANTS[quant][1]}.gguf"


def read_metadata(path: Path) -> dict[str, Any]:
    """A few header fields of a GGUF file (architecture, name, file type), read with llama.cpp's gguf-py."""
    sys.path.insert(0, str(tools_dir() / "gguf-py"))
    try:
        from gguf import GGUFReader
    finally:
        sys.path.pop(0)
    reader = GGUFReader(str(path))
    out: dict[str, Any] = {}
    for key in ("general.architecture", "general.name", "general.file_type", "tokenizer.ggml.pre"):
        f = reader.fields.get(key)
        if f is not None:
            out[key] = f.contents()
    out["tensors"] = len(reader.tensors)
    return out


# ---- the child processes -------------------------------------------------------------------------------

def _unrecognised_tokenizer_is_gpt2(model_dir: Path) -> bool:
    """True when the model's tokenizer pre-splits text exactly like GPT-2 (a plain byte-level BPE).

    llama.cpp's converter identifies pre-tokenizers by hashing the token ids of a test string, so a tokenizer
    trained from scratch (the demo model's) is never in its table even when its rules are GPT-2's own; for
    those, and only those, llama.cpp's 'gpt-2' pre-tokenizer is the exact match.
    """
    try:
        spec = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    pre = spec.get("pre_tokenizer") or {}
    model = spec.get("model") or {}
    return (model.get("type") == "BPE" and pre.get("type") == "ByteLevel" and pre.get("use_regex", True)
            and not pre.get("add_prefix_space", False) and spec.get("normalizer") is None)


def _convert_main(model_dir: str, out_file: str, outtype: str) -> None:
    tools = tools_dir()
    sys.path.insert(0, str(tools))
    import convert_hf_to_gguf  # llama.cpp's script; it puts its own gguf-py first on sys.path
    from conversion.base import TextModel

    original = TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self: Any, tokenizer: Any) -> str:
        try:
            return original(self, tokenizer)
        except NotImplementedError:
            if _unrecognised_tokenizer_is_gpt2(Path(model_dir)):
                print("tokenizer not in llama.cpp's table; its pre-tokenizer is GPT-2's byte-level one: using "
                      "'gpt-2'")
                return "gpt-2"
            raise

    TextModel.get_vocab_base_pre = get_vocab_base_pre
    sys.argv = ["convert_hf_to_gguf.py", model_dir, "--outfile", out_file, "--outtype", outtype]
    convert_hf_to_gguf.main()


def _quantize_main(src: str, dst: str, quant: str) -> None:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANTS[quant][0]
    params.nthread = max(1, (os.cpu_count() or 1))
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), params)
    if rc != 0:
        raise SystemExit(f"llama_model_quantize returned {rc}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medcot_ui.publish.gguf", description="llama.cpp's GGUF tools")
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert", help="Hugging Face model folder -> GGUF")
    c.add_argument("model_dir")
    c.add_argument("out_file")
    c.add_argument("--outtype", default="auto")
    q = sub.add_parser("quantize", help="GGUF -> quantised GGUF")
    q.add_argument("src")
    q.add_argument("dst")
    q.add_argument("quant", choices=sorted(QUANTS))
    args = parser.parse_args(argv)
    if args.cmd == "convert":
        _convert_main(args.model_dir, args.out_file, args.outtype)
    else:
        _quantize_main(args.src, args.dst, args.quant)
    return 0


if __name__ == "__main__":
    sys.exit(main())
