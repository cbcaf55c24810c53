"""``medcot``: train, queue and manage runs from a shell.

Examples::

    medcot config --preset demo > demo.yaml      # write a config to edit
    medcot train demo.yaml                       # train now, in this terminal (no queue)
    medcot enqueue demo.yaml --set lora.r=32     # queue it for the worker
    medcot list                                  # what is queued, running, finished
    medcot show 3                                # one run: status, config, last metrics, log tail
    medcot cancel 3                              # stop run 3 (a queued run at once)
    medcot resume 3                              # continue it from its last checkpoint
    medcot delete 3                              # delete it (restorable for an hour)
    medcot restore 3                             # undo the delete
    medcot eval held-out 3 -n 50                 # evaluate run 3 against its base (`medcot eval -h`)
    medcot worker                                # train queued runs (the app starts one for you)
    medcot build-demo-model                      # the tiny offline model (built on first use anyway)
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from typing import Any

import yaml
from sqlalchemy.exc import DatabaseError

from medcot_ui.errors import MedcotError
from medcot_ui.evaluate.cli import add_parser as add_eval_parser
from medcot_ui.settings import database_url, get_settings
from medcot_ui.store_damage import explain
from medcot_ui.training.config import ConfigError, RunConfig
from medcot_ui.training.presets import PRESETS
from medcot_ui.units import when


def _overrides(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError([f"--set {pair}: expected section.name=value, e.g. lora.r=32"])
        out[key.strip()] = yaml.safe_load(value)  # so 32 is an int, true a bool, [a, b] a list
    return out


def _load(args: argparse.Namespace) -> RunConfig:
    config = RunConfig.load(args.config) if args.config else RunConfig()
    return config.with_overrides(_overrides(args.set)) if args.set else config


def cmd_config(args: argparse.Namespace) -> int:
    print(PRESETS[args.preset]().to_yaml(), end="")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from jobs.train import train_direct

    run_id, status = train_direct(_load(args))
    print(f"run {run_id}: {status}")
    return 0 if status == "succeeded" else 1


def cmd_enqueue(args: argparse.Namespace) -> int:
    from medcot_ui.jobkinds import enqueue

    config = _load(args)
    run = enqueue(config.job_kind, config)
    print(f"queued run {run.id} ({run.name}); a worker will pick it up (`medcot worker`, or the app's own)")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from medcot_ui.runs.status import status_text
    from medcot_ui.store import list_runs

    runs = list_runs(args.limit)
    if not runs:
        print("no runs yet: `medcot enqueue CONFIG` or the app's Train tab starts one")
        return 0
    print(f"{'id':>4}  {'status':<11} {'step':>9}  {'loss':>8}  {'created':<19}  name")
    for r in runs:
        steps = f"{r.last_step}/{r.total_steps or '?'}"
        loss = f"{r.last_loss:.4f}" if r.last_loss is not None else "-"
        status = status_text(r.status, r.cancel_requested, r.lease_expires_at, r.heartbeat_at)
        print(f"{r.id:>4}  {status:<11} {steps:>9}  {loss:>8}  {when(r.created_at, seconds=True):<19}  {r.name}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from medcot_ui.runs.status import status_text
    from medcot_ui.store import get_run, run_events, run_metrics

    run = get_run(args.run_id)
    if run is None:
        print(f"run {args.run_id} does not exist", file=sys.stderr)
        return 2
    status = status_text(run.status, run.cancel_requested, run.lease_expires_at, run.heartbeat_at)
    info = {"id": run.id, "name": run.name, "status": status, "attempt": run.attempt,
            **{key: when(getattr(run, f"{key}_at"), seconds=True) for key in ("created", "started", "finished")},
            "steps": f"{run.last_step}/{run.total_steps or '?'}", "device": run.device,
            "output_dir": run.output_dir, "dataset_fingerprint": run.dataset_fingerprint, "error": run.error}
    if run.deleted:
        info["deleted"] = (f"{when(run.deleted_at, seconds=True)} (`medcot restore {run.id}` brings it back until it "
                           "is purged)")
    print(yaml.safe_dump(info, sort_keys=False, allow_unicode=True), end="")
    metrics = run_metrics(run.id)
    if metrics:
        print("metrics (last 5):")
        for m in metrics[-5:]:
            print(f"  step {m.step:>5}  loss {m.loss if m.loss is not None else '-'}  lr {m.learning_rate}")
    print("events:")
    for e in run_events(run.id, limit=args.events):
        print(f"  {when(e.ts, seconds=True)} {e.level:<7} {e.message}")
    if args.config:
        print(run.config_json)
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from jobs.queue import request_cancel
    from medcot_ui.store import RunStatus

    if request_cancel(args.run_id) == RunStatus.cancelled:
        print(f"run {args.run_id}: cancelled before it started (`medcot resume {args.run_id}` queues it again)")
    else:
        print(f"run {args.run_id}: stopping at its next step; it saves its adapter and becomes cancelled "
              f"(`medcot show {args.run_id}` to follow it)")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from jobs.queue import resume

    resume(args.run_id)
    print(f"run {args.run_id}: queued again; it continues from its last checkpoint when a worker picks it up")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from jobs.queue import delete_run
    from medcot_ui.settings import get_settings
    from medcot_ui.units import duration

    delete_run(args.run_id)
    print(f"run {args.run_id}: deleted; `medcot restore {args.run_id}` brings it back within "
          f"{duration(get_settings().undo_seconds)}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from jobs.queue import restore_run

    run = restore_run(args.run_id)
    print(f"run {args.run_id}: restored ({run.status})")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from jobs.worker import main as worker_main

    return worker_main(["--exit-when-idle"] if args.exit_when_idle else [])


def cmd_build_demo_model(args: argparse.Namespace) -> int:
    from medcot_ui.training.models import ensure_demo_model

    print(f"demo model ready in {ensure_demo_model()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medcot", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument("config", nargs="?", help="YAML or JSON run config (default: the reference recipe)")
        p.add_argument("--set", action="append", default=[], metavar="SECTION.NAME=VALUE",
                       help="override one setting, e.g. --set training.max_steps=10 (repeatable)")

    p = sub.add_parser("config", help="print a run config as YAML (to edit and pass to train/enqueue)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="recipe")
    p.set_defaults(fn=cmd_config)
    p = sub.add_parser("train", help="train a config now in this terminal, without the queue")
    with_config(p)
    p.set_defaults(fn=cmd_train)
    p = sub.add_parser("enqueue", help="queue a config for the worker")
    with_config(p)
    p.set_defaults(fn=cmd_enqueue)
    p = sub.add_parser("list", help="list runs, newest first")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(fn=cmd_list)
    p = sub.add_parser("show", help="one run: status, steps, metrics, events")
    p.add_argument("run_id", type=int)
    p.add_argument("--events", type=int, default=20, help="how many events to show")
    p.add_argument("--config", action="store_true", help="also print the run's config")
    p.set_defaults(fn=cmd_show)
    for name, fn, help_text in (
            ("cancel", cmd_cancel, "stop a run: a queued one at once, a running one at its next step (adapter saved)"),
            ("resume", cmd_resume, "continue an interrupted or cancelled run from its checkpoint"),
            ("delete", cmd_delete, "delete a finished run with its metrics and files"),
            ("restore", cmd_restore, "undo a delete (within MEDCOT_UNDO_SECONDS, default 1 hour)")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("run_id", type=int)
        p.set_defaults(fn=fn)
    add_eval_parser(sub)
    p = sub.add_parser("worker", help="train queued runs one at a time (the app starts one unless told not to)")
    p.add_argument("--exit-when-idle", action="store_true")
    p.set_defaults(fn=cmd_worker)
    p = sub.add_parser("build-demo-model", help="build the tiny offline demo model now")
    p.set_defaults(fn=cmd_build_demo_model)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except ConfigError as exc:
        print("invalid config:\n  " + "\n  ".join(exc.errors), file=sys.stderr)
        return 2
    except MedcotError as exc:  # every error worded for a person: a clear sentence, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (DatabaseError, sqlite3.DatabaseError) as exc:  # a damaged runs.db: which file, and the way back
        if (damaged := explain(exc, database_url(), get_settings().home)) is None:
            raise
        print(f"error: {damaged}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
