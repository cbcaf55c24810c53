"""What the Publish tab shows, as plain data and text (no Gradio): run choices, the run's summary, the history
of its publishes, and status lines for each outcome."""

from __future__ import annotations

from typing import Any

from medcot_ui.publish import export as publish
from medcot_ui.publish import gguf_build
from medcot_ui.publish.hub import HubError, Identity
from medcot_ui.publish.export import KIND_LABELS, KINDS, Outcome, publishable_runs
from medcot_ui.publish.downloads import summary
from medcot_ui.publish.records import publishes_for_run
from medcot_ui.store import Run
from medcot_ui.units import when

HISTORY_HEADERS = ["#", "when", "what", "where", "status", "account", "commit", "details"]
# The first words of a failure, by HubError kind: what the user needs to know at a glance.
HEADLINES = {"invalid_token": "Invalid token", "no_write_access": "No write access", "name_taken": "Name taken",
             "unreachable": "Cannot reach the Hub", "upload_incomplete": "Upload did not finish",
             "invalid_name": "Invalid repository name", "hub_error": "The Hub refused"}


def token_help(auth_mode: str) -> str:
    """Whose token a publish uses, in the words of the app's sign-in mode."""
    if auth_mode == "space":
        return "Publishing uses **your Hugging Face login** (sign in above); the repository goes to your account."
    if auth_mode == "password":
        return "Paste **your own** Hugging Face token with write access. It is used for this upload only: never " \
               "stored, logged or shown."
    return ("Uses the token in the field below if you paste one, else `HF_TOKEN` / your `hf auth login`. The token "
            "is used for this upload only: never stored, logged or shown.")


def target_text(identity: Identity, repo_id: str) -> str:
    """What a successful token check tells the user: who publishes, and who will own the repository."""
    owner = repo_id.split("/")[0]
    whose = "you" if owner.lower() == identity.name.lower() else owner
    return f"✅ The token belongs to **{identity.name}**: **{repo_id}** will be owned by {whose} " \
           f"(published as {identity.name})."


def repo_for_kind(run: Run, kind: str, current_repo: str | None) -> str:
    """The default repository name for ``kind``, keeping the account (or organisation) the user already typed."""
    account = current_repo.split("/", 1)[0] + "/" if "/" in (current_repo or "") else ""
    return account + publish.default_repo_name(run, kind)


def run_choices() -> list[tuple[str, int]]:
    return [(r.label, int(r.id)) for r in publishable_runs()]


def kind_choices() -> tuple[list[tuple[str, str]], str]:
    """The export kinds this machine can make, and the note shown under them (why GGUF is off, or that its first
    export builds its tools)."""
    available = gguf_build.offer()
    kinds = [k for k in KINDS if k != "gguf" or available.ok]
    return [(KIND_LABELS[k], k) for k in kinds], available.reason


def run_summary(run: Run) -> str:
    final = f"final loss {run.last_loss:.4f}" if run.last_loss is not None else "no loss logged"
    steps = f"{run.last_step}" + (f"/{run.total_steps}" if run.total_steps else "")
    base = run.base_model or "?"
    return f"**Run {run.id}** · {run.name or 'unnamed'} · {run.status} · {steps} steps · {final} · base `{base}`"


def history_table(run_id: int | None) -> list[list[Any]]:
    """One row per export or publish of the run, newest first."""
    if run_id is None:
        return []
    rows = []
    for p in publishes_for_run(int(run_id)):
        where = p.url or p.target if p.destination == "hub" else f"local: {p.target}"
        details = p.error or (("private" if p.private else "public") if p.destination == "hub" else "")
        rows.append([p.id, when(p.created_at, missing=""), p.kind, where, p.status, p.account or "",
                     (p.commit_id or "")[:12], details])
    return rows


def failure_text(exc: Exception, record_hint: str = "") -> str:
    headline = HEADLINES.get(exc.kind, "Failed") if isinstance(exc, HubError) else "Failed"
    return f"❌ **{headline}.** {exc}{record_hint}"


def success_text(outcome: Outcome) -> str:
    if outcome.url:
        return (f"✅ **Published** {KIND_LABELS[outcome.kind].split(' (')[0].lower()} to [{outcome.repo_id}]"
                f"({outcome.url}) as **{outcome.account}**, commit `{outcome.commit_id[:12]}`: "
                f"{len(outcome.files)} files ({', '.join(outcome.files)}).")
    return (f"✅ **Exported.** To download (under *Export locally*): {summary(outcome.downloads)}. On this machine: "
            f"`{outcome.folder}` ({len(outcome.files)} files).")


def card_preview(run_id: int, kind: str, repo_id: str | None) -> str:
    """The model card an export or publish of ``run_id`` would carry now: its metadata, then its text."""
    from medcot_ui.publish.card import build_card, gather

    card = build_card(gather(run_id, kind or "adapter", repo_id or None))
    return f"```yaml\n{card.data.to_yaml()}\n```\n\n{card.text}"
