"""Export a finished run (adapter, merged 16-bit model, GGUF) to a local folder, and publish it to the Hub.

What is uploaded is exactly the local export folder: the weights of the chosen kind, the tokenizer, the model
card (README.md), its loss curve and the training config -- never checkpoints, optimizer states or logs.
Every export and publish is a ``Publish`` row (:mod:`medcot_ui.publish.records`): written ``pending`` before
anything happens and finished as ``succeeded`` (with the repo URL and commit id) or ``failed`` (with the reason);
nothing is marked succeeded unless the Hub returned a commit. The token is a parameter, held only by
:class:`medcot_ui.publish.hub.HubClient`. A local export's downloads for the browser come from ``downloads``.

Merging runs in a child process (``python -m medcot_ui.publish.merge ADAPTER OUT``, paths only on its command line) so
an out-of-memory merge of a large model cannot take the web app down.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcot_ui.errors import MedcotError
from medcot_ui.publish import gguf, gguf_build, merge
from medcot_ui.publish.downloads import Download, offer_downloads

from medcot_ui.publish import card as model_card
from medcot_ui.publish.hub import HubClient, HubError, Identity, safe_repo_name, split_repo_id
from medcot_ui.publish.records import finish_record, start_record, update_record
from medcot_ui.hosting.bucket_files import keep_quietly
from medcot_ui.redact import child_env, scrub
from medcot_ui.settings import get_settings
from medcot_ui.store import FINISHED, Run, RunStatus, get_run, live_runs, read_session
from medcot_ui.units import human_size

KINDS = ("adapter", "merged", "gguf")
KIND_LABELS = {"adapter": "LoRA adapter + tokenizer (small; needs the base model)",
               "merged": "Merged 16-bit model (standalone)",
               "gguf": "GGUF q4_k_m + q8_0 (llama.cpp / Ollama)"}
REPO_SUFFIX = {"adapter": "", "merged": "-merged", "gguf": "-GGUF"}
CARD_FILES = {"README.md", model_card.LOSS_CURVE, model_card.TRAINING_CONFIG}
# Files of a saved tokenizer; whichever of them the run saved travel with the weights.
TOKENIZER_FILES = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json"}

ProgressFn = Callable[[float, str], None]


def _no_progress(_fraction: float, _desc: str) -> None:
    return None


class PublishError(MedcotError, RuntimeError):
    """The export or publish cannot go on; the message is for the user (never holds a token)."""


@dataclass
class Outcome:
    """What one export or publish did (``record_id`` is its Publish row)."""

    record_id: int
    kind: str
    folder: Path
    files: list[str]
    repo_id: str | None = None
    url: str | None = None
    commit_id: str | None = None
    account: str | None = None
    downloads: list[Download] = field(default_factory=list)  # a local export's, for the browser
    messages: list[str] = field(default_factory=list)


# ---- which runs, which files ----------------------------------------------------------------------------

def publishable(run: Run | None) -> str | None:
    """None when ``run`` can be exported, else the reason it cannot (shown to the user)."""
    if run is None:
        return "Choose a run first."
    if run.deleted:
        return f"Run {run.id} was deleted. Restore it in the Runs tab to publish it."
    if run.status not in FINISHED:
        return f"Run {run.id} is {run.status}: wait until it has finished."
    if not run.has_adapter:
        return (f"Run {run.id} ({run.status}) saved no adapter, so there is nothing to publish."
                + (" Resume it to train it to the end." if run.status != RunStatus.succeeded else ""))
    return None


def publishable_runs(limit: int = 200) -> list[Run]:
    from sqlmodel import select

    with read_session() as s:
        runs = list(s.exec(select(Run).where(Run.status.in_(FINISHED), live_runs())
                           .order_by(Run.id.desc()).limit(limit)))
    return [r for r in runs if publishable(r) is None]


def stem(run: Run) -> str:
    return safe_repo_name(run.name or f"run-{run.id}")


def default_repo_name(run: Run, kind: str, account: str | None = None) -> str:
    """``<account>/<run name>`` (plus -merged / -GGUF); without a known account just the name."""
    name = stem(run) + REPO_SUFFIX[kind]
    return f"{account}/{name}" if account else name


def resolve_repo_id(text: str, identity: Identity) -> str:
    """The full repo id: a bare name goes to the token's own account."""
    text = (text or "").strip()
    repo_id = text if "/" in text else f"{identity.name}/{text}"
    split_repo_id(repo_id)
    return repo_id


def export_root(run_id: int) -> Path:
    return get_settings().run_exports_dir(run_id)


def available_ram(cgroup: Path = Path("/sys/fs/cgroup"), free: int | None = None) -> int:
    """Bytes of RAM this process can still use: the machine's free memory (``free``, read now when not given), or
    less when a container limit (cgroup v2 ``memory.max``, v1 ``memory.limit_in_bytes``) leaves less, as on a Space
    or under Docker."""
    import psutil

    free = psutil.virtual_memory().available if free is None else free
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        try:
            limit = (cgroup / limit_file).read_text().strip()
            usage = int((cgroup / usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:  # "max" or a huge number: no limit
            return min(free, max(int(limit) - usage, 0))
    return free


def check_memory_for_merge(run: Run, available: int | None = None) -> None:
    """Refuse a merge this machine's free RAM cannot hold, before it starts (rather than being killed halfway)."""
    base = run.base_model
    need = merge.memory_needed(base)
    if available is None:
        available = available_ram()
    if need is not None and need > available:
        raise PublishError(f"Merging needs about {human_size(need)} of free RAM to hold `{base}` in 16 bits, and "
                           f"this machine has {human_size(available)} free. Export the adapter instead (it loads "
                           "on top of the base model anywhere), or merge on a machine with more memory.")


def _merge_in_child(adapter: Path, out_dir: Path, base: str, log_file: Path) -> str:
    cmd = [sys.executable, "-m", "medcot_ui.publish.merge", str(adapter), str(out_dir), "--base", base]
    # The merge needs no credentials but HF_TOKEN (a gated base model), and no GPU: it runs on the CPU, the GPU
    # stays with training and Compare.
    env = child_env(keep=("HF_TOKEN",), CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    with open(log_file, "a", encoding="utf-8") as fh:
        fh.write(f"$ merge\n{scrub(proc.stdout + proc.stderr)}\n")
    if proc.returncode != 0:
        tail = "\n".join(scrub(proc.stderr or proc.stdout or "").strip().splitlines()[-4:])
        if proc.returncode in (-9, 137):
            tail = "the merge process was killed, most likely out of memory"
        raise PublishError(f"Merging the adapter into the base model failed: {tail or f'exit {proc.returncode}'}")
    return (proc.stdout.strip().splitlines() or ["float16"])[-1]


# ---- exports --------------------------------------------------------------------------------------------

_locks: dict[tuple[int, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(run_id: int, kind: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((run_id, kind), threading.Lock())


def _signature(run: Run) -> dict[str, Any]:
    weights = run.adapter_dir / "adapter_model.safetensors"
    st = weights.stat()
    return {"adapter": str(weights), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _swap_in(tmp: Path, final: Path) -> None:
    """Replace ``final`` by the finished ``tmp`` folder, so a half-written export is never seen."""
    old = final.with_name(f".old-{final.name}-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def _merged_export(run: Run, progress: ProgressFn, log_file: Path) -> tuple[Path, str]:
    """The run's merged export folder, reused when it was made from the current adapter."""
    root = export_root(run.id)
    final = root / "merged"
    marker = root / "merged.source.json"
    if final.exists() and marker.exists():
        recorded = json.loads(marker.read_text(encoding="utf-8"))
        if recorded.get("signature") == _signature(run):
            progress(0.45, "Merged model already exported from this adapter: reusing it")
            return final, recorded.get("dtype", "float16")
    check_memory_for_merge(run)
    progress(0.1, "Merging the adapter into the base model on the CPU (this loads the full 16-bit base model)...")
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-merged-", dir=root))
    try:
        dtype = _merge_in_child(run.adapter_dir, tmp, run.base_model, log_file)
        _swap_in(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    marker.write_text(json.dumps({"signature": _signature(run), "dtype": dtype}), encoding="utf-8")
    return final, dtype


def _export_kind(run: Run, kind: str, repo_id: str | None, progress: ProgressFn) -> tuple[Path, list[str]]:
    root = export_root(run.id)
    root.mkdir(parents=True, exist_ok=True)
    log_file = root / "export.log"
    final = root / kind
    if kind == "merged":
        folder, dtype = _merged_export(run, progress, log_file)
        for name in CARD_FILES:
            (folder / name).unlink(missing_ok=True)
        progress(0.5, "Writing the model card")
        model_card.write_card(model_card.gather(run.id, kind, repo_id, merged_dtype=dtype), folder)
        return folder, sorted(p.name for p in folder.iterdir() if p.is_file())
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{kind}-", dir=root))
    try:
        card_files: list[str] = []
        dtype = None
        if kind == "adapter":
            progress(0.2, "Copying the adapter and tokenizer")
            for src in sorted(run.adapter_dir.iterdir()):
                if src.is_file() and src.name != "README.md":  # PEFT's placeholder card: ours replaces it
                    shutil.copy2(src, tmp / src.name)
        else:
            if not (offered := gguf_build.offer()).ok:
                raise PublishError(offered.reason)
            gguf_build.ensure(progress, log_file)
            merged, dtype = _merged_export(run, progress, log_file)
            with tempfile.TemporaryDirectory(prefix=".tmp-gguf-work-", dir=root) as work:
                progress(0.5, "Converting the merged model to GGUF with llama.cpp's converter")
                full = gguf.convert(merged, Path(work) / f"{stem(run)}-full.gguf", log_file=log_file)
                for i, quant in enumerate(gguf.QUANTS):
                    progress(0.6 + 0.15 * i, f"Quantizing to {quant} with llama.cpp")
                    gguf.quantize(full, tmp / gguf.file_name(stem(run), quant), quant, log_file=log_file)
                    card_files.append(gguf.file_name(stem(run), quant))
        progress(0.85 if kind == "gguf" else 0.4, "Writing the model card")
        model_card.write_card(model_card.gather(run.id, kind, repo_id, files=card_files, merged_dtype=dtype), tmp)
        _swap_in(tmp, final)
    except gguf.GGUFError as exc:
        raise PublishError(f"GGUF export failed while {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final, sorted(p.name for p in final.iterdir() if p.is_file())


def _build(run_id: int, kind: str, repo_id: str | None, progress: ProgressFn) -> tuple[Run, Path, list[str]]:
    if kind not in KINDS:
        raise PublishError(f"Unknown export '{kind}': choose one of {', '.join(KINDS)}.")
    run = get_run(run_id)
    reason = publishable(run)
    if reason:
        raise PublishError(reason)
    lock = _lock(run_id, kind)
    if not lock.acquire(blocking=False):
        raise PublishError(f"An export of run {run_id} ({kind}) is already in progress: wait for it to finish.")
    try:
        folder, files = _export_kind(run, kind, repo_id, progress)
    finally:
        lock.release()
    return run, folder, files


def export_local(run_id: int, kind: str = "adapter", progress: ProgressFn = _no_progress) -> Outcome:
    """Export to ``exports/run-N/<kind>`` with its downloads (files or an archive); recorded as a local Publish row."""
    target = str(export_root(run_id) / kind)
    record = start_record(run_id, kind, "local", target)
    try:
        run, folder, files = _build(run_id, kind, None, progress)
        progress(0.95, "Preparing the download (a merged model's archive takes a while)")
        offered = offer_downloads(kind, folder, f"{stem(run)}-{kind}")
    except PublishError as exc:
        finish_record(record, "failed", error=str(exc))
        raise
    except Exception as exc:  # noqa: BLE001 - recorded, then shown
        message = f"Export failed: {scrub(f'{type(exc).__name__}: {exc}')}"
        finish_record(record, "failed", error=message)
        raise PublishError(message) from None
    finish_record(record, "succeeded", files_json=json.dumps(files))
    keep_quietly(folder)  # final: to the bucket, where one is mounted
    progress(1.0, "Exported")
    return Outcome(record, kind, folder, files, downloads=offered)


def hub_unreachable_reason() -> str | None:
    """Why this machine cannot publish at all (offline mode, or no answer from the Hub), or None when it can."""
    from huggingface_hub import constants

    from medcot_ui.data.hub import hub_reachable

    local = "*Export locally* works without it."
    if constants.HF_HUB_OFFLINE:
        return ("The app runs in offline mode (HF_HUB_OFFLINE=1 in its environment), so it cannot reach the "
                f"Hugging Face Hub to publish. {local}")
    if not hub_reachable():
        return f"The Hugging Face Hub cannot be reached from this machine (no network?). {local}"
    return None


def check_token(token: str, repo_text: str, endpoint: str | None = None) -> tuple[Identity, str]:
    """Who owns ``token`` and the full repo id it would publish to; raises HubError (scrubbed) on any problem."""
    client = HubClient(token, endpoint)
    client.check_reachable()
    identity = client.whoami()
    repo_id = resolve_repo_id(repo_text, identity)
    client.check_write_access(identity, repo_id)
    return identity, repo_id


def publish_to_hub(run_id: int, kind: str, repo_text: str, token: str, private: bool = True,
                   update_existing: bool = False, progress: ProgressFn = _no_progress,
                   endpoint: str | None = None) -> Outcome:
    """Check the token, export, create (or update) the repo and upload the export in one commit.

    The Publish row is written before the first network call and finished whatever happens; it is marked
    succeeded only once the Hub has returned the commit.
    """
    record = start_record(run_id, kind, "hub", (repo_text or "").strip(), private)
    account = None
    try:
        if not token:
            raise PublishError("No Hugging Face token: sign in, set HF_TOKEN, or paste a token with write access.")
        if kind == "gguf" and not (tools := gguf_build.offer()).ok:
            raise PublishError(tools.reason)
        client = HubClient(token, endpoint)
        progress(0.02, "Checking that the Hub can be reached")
        client.check_reachable()
        progress(0.05, "Checking the token")
        identity = client.whoami()
        account = identity.name
        repo_id = resolve_repo_id(repo_text, identity)
        client.check_write_access(identity, repo_id)
        update_record(record, account=account, target=repo_id)
        client.check_target(repo_id, update_existing)  # a taken name fails now, before minutes of export
        _, folder, files = _build(run_id, kind, repo_id, progress)
        progress(0.9, f"Creating {repo_id} on the Hub as {account}")
        repo_url, created = client.ensure_repo(repo_id, private, update_existing)
        update_record(record, url=repo_url)  # the repo is ours to update now, also for a retry of a failure
        progress(0.92, f"Uploading {len(files)} files to {repo_id}")
        commit = client.upload_folder(folder, repo_id, f"Publish {kind} of MedCoT Studio run {run_id}", created)
    except (HubError, PublishError) as exc:
        finish_record(record, "failed", account=account, error=scrub(str(exc), (token,)))
        raise
    except Exception as exc:  # noqa: BLE001 - recorded and shown, token scrubbed
        message = scrub(f"Publishing failed: {type(exc).__name__}: {exc}", (token,))
        finish_record(record, "failed", account=account, error=message)
        raise PublishError(message) from None
    finish_record(record, "succeeded", account=account, url=commit.url, commit_id=commit.commit_id,
                  files_json=json.dumps(files))
    progress(1.0, "Published")
    return Outcome(record, kind, folder, files, repo_id=repo_id, url=commit.url, commit_id=commit.commit_id,
                   account=account)
