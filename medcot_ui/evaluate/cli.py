"""``medcot eval``: queue, list, show and export evaluations from a shell (the Evaluate tab's options).

    medcot eval held-out 3 -n 50                   # run 3 against its base on its own held-out rows
    medcot eval held-out 3 --against 2 --file q.jsonl
    medcot eval choice 3 --source demo -n 20       # multiple-choice accuracy (default: MedQA 4-option, test)
    medcot eval choice 3 --benchmark medmcqa --method loglik   # a standard benchmark by name, scored in minutes
    medcot eval choice 3 --source file --file medqa_test.jsonl --check-only   # which questions run 3 trained on
    medcot eval list / medcot eval show 1 / medcot eval export 1 --format csv
    medcot eval table 3                            # run 3's benchmarks: base and tuned side by side, per method
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from medcot_ui.evaluate.benchmark_layouts import BENCHMARKS
from medcot_ui.evaluate.choice_data import DEFAULT_HUB_DATASET, DEFAULT_HUB_SPLIT, LETTERED
from medcot_ui.evaluate.create import (METHODS, WEIGHTS, EvalRequest, EvaluationError, contamination_of, create_evaluation,
                                      evaluable_run, fewer_note, gather_questions, overlap_lines)
from medcot_ui.evaluate.tables import CHOICE, HELD_OUT

DEFAULTS = EvalRequest()


def _generation_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_id", type=int, help="the tuned run to evaluate (finished, with an adapter)")
    p.add_argument("--against", type=int, dest="base_run_id", help="another run of the same base model to "
                   "compare with (default: the base model itself)")
    p.add_argument("-n", type=int, default=DEFAULTS.n, help=f"how many questions (default {DEFAULTS.n})")
    p.add_argument("--max-new-tokens", type=int, default=DEFAULTS.max_new_tokens)
    p.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size,
                   help="answers generated at once (the batch engine's slots); 0 (default): as many as GPU memory "
                        "holds")
    p.add_argument("--weights", choices=WEIGHTS, default=DEFAULTS.weights,
                   help="the base model's weights: auto (default: 16-bit when it fits the GPU, else 4-bit), bf16, 4bit")
    p.add_argument("--sample", action="store_true", help="sample at --temperature instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=DEFAULTS.temperature)
    p.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seed of the blind A/B order")
    p.add_argument("--wait", action="store_true", help="wait until a worker has finished it, showing progress")
    p.add_argument("--exclude-contaminated", action="store_true",
                   help="leave out questions that share 64 characters or 13 words with the runs' training rows")
    p.add_argument("--check-only", action="store_true",
                   help="run the contamination check and list what it flags; queue nothing")


def cmd_create(args: argparse.Namespace) -> int:
    mapping = {}
    if args.kind == CHOICE and (args.question_column or args.options_column or args.lettered or args.answer_column):
        mapping = {"question": args.question_column or "question", "answer": args.answer_column or "answer",
                   "options": LETTERED if args.lettered else (args.options_column or "options")}
    source = args.source if args.kind == CHOICE else ("file" if args.file else "held_out")
    if getattr(args, "benchmark", None):
        named = BENCHMARKS[args.benchmark]
        source, args.dataset, args.config, args.split = "hub", named.dataset_id, named.config, named.split
    req = EvalRequest(kind=args.kind, run_id=args.run_id, base_run_id=args.base_run_id, n=args.n, source=source,
                      file_path=args.file or "", dataset_id=getattr(args, "dataset", "") or "",
                      dataset_config=getattr(args, "config", "") or "", split=getattr(args, "split", "test"),
                      mapping=mapping, max_new_tokens=args.max_new_tokens, greedy=not args.sample,
                      temperature=args.temperature, batch_size=args.batch_size, weights=args.weights,
                      seed=args.seed, exclude_contaminated=args.exclude_contaminated,
                      method=getattr(args, "method", DEFAULTS.method))
    if args.check_only:
        return _check_only(req)
    evaluation = create_evaluation(req)
    print(f"queued evaluation {evaluation.id} (job {evaluation.job_id}): {evaluation.n_items} questions from "
          f"{evaluation.source}{fewer_note(req, evaluation)}; a worker will pick it up (`medcot worker`, or the "
          "app's own)")
    return _wait(evaluation.id) if args.wait else 0


def _check_only(req: EvalRequest) -> int:
    req.check()
    run, config = evaluable_run(req.run_id)
    if req.base_run_id is not None:
        evaluable_run(req.base_run_id)
    questions, where = gather_questions(req, run.id, config)
    report = contamination_of(req, questions)
    print(f"{where}: {report.summary()} ({report.seconds:.1f} s)")
    for line in overlap_lines(report):
        print(f"  {line}")
    return 0


def _wait(evaluation_id: int) -> int:
    from medcot_ui.evaluate.records import get_evaluation, progress
    from medcot_ui.store import FINISHED, get_run

    evaluation = get_evaluation(evaluation_id)
    while (job := get_run(evaluation.job_id)).status not in {s.value for s in FINISHED}:
        print(f"  {job.status}: {progress(evaluation_id).line(job.status == 'running')}", flush=True)
        time.sleep(2)
    print(f"evaluation {evaluation_id}: {job.status}" + (f": {job.error}" if job.error else ""))
    return cmd_show(argparse.Namespace(evaluation_id=evaluation_id)) if job.status == "succeeded" else 1


def cmd_list(args: argparse.Namespace) -> int:
    from medcot_ui.evaluate.records import list_evaluations, progress
    from medcot_ui.store import get_run

    rows = list_evaluations(args.run)
    if not rows:
        print("no evaluations yet: `medcot eval held-out RUN` or `medcot eval choice RUN` queues one")
    for e in rows:
        job, p = get_run(e.job_id), progress(e.id)
        print(f"{e.id:>4}  {e.kind:<8}  run {e.run_id:<4}  {job.status:<11} {p.done:>5}/{p.total:<5}  {e.source}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from medcot_ui.evaluate.records import get_evaluation, progress
    from medcot_ui.evaluate.results import RESEARCH_ONLY, headline, summary_lines
    from medcot_ui.store import get_run

    evaluation = get_evaluation(args.evaluation_id)
    if evaluation is None:
        raise EvaluationError(f"evaluation {args.evaluation_id} does not exist")
    job, p = get_run(evaluation.job_id), progress(evaluation.id)
    print(headline(evaluation))
    print(f"job {job.id}: {job.status}, {p.line(job.status == 'running')}" + (f" ({job.error})" if job.error else ""))
    for line in summary_lines(evaluation):
        print(f"  {line}")
    print(RESEARCH_ONLY)
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    from medcot_ui.evaluate.benchmark_table import benchmark_markdown
    from medcot_ui.evaluate.in_card import finished_evaluations

    evaluable_run(args.run_id)
    print(benchmark_markdown(finished_evaluations(args.run_id)))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from medcot_ui.evaluate.export import export_csv, export_jsonl

    out = Path(args.out) if args.out else None
    # rater=None: a shell user holds runs.db itself, so blinding them would hide nothing.
    path = (export_csv if args.format == "csv" else export_jsonl)(args.evaluation_id, out, rater=None)
    print(path)
    return 0


def add_parser(sub: Any) -> None:
    """Register ``medcot eval`` and its commands on the CLI's subparsers."""
    ev = sub.add_parser("eval", help="evaluate a run: held-out A/B answers or multiple-choice accuracy",
                        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = ev.add_subparsers(dest="eval_command", required=True, metavar="EVAL_COMMAND")
    p = commands.add_parser("held-out", help="both models answer held-out questions, for blind rating")
    _generation_options(p)
    p.add_argument("--file", help="questions from this file (the run's column mapping) instead of its held-out rows")
    p.set_defaults(fn=cmd_create, kind=HELD_OUT)
    p = commands.add_parser("choice", help="multiple-choice accuracy of both models")
    _generation_options(p)
    p.add_argument("--source", choices=("hub", "file", "demo"), default="hub")
    p.add_argument("--benchmark", choices=list(BENCHMARKS),
                   help="a standard benchmark from the Hub by name (sets --dataset, --config and --split): "
                        + "; ".join(f"{k}: {b.dataset_id} {b.config} ({b.split})".replace("  ", " ")
                                    for k, b in BENCHMARKS.items()))
    p.add_argument("--dataset", default=DEFAULT_HUB_DATASET, help="Hub dataset id (source hub)")
    p.add_argument("--config", default="", help="Hub dataset config")
    p.add_argument("--split", default=DEFAULT_HUB_SPLIT)
    p.add_argument("--file", help="JSONL, CSV or Parquet file (source file)")
    p.add_argument("--question-column")
    p.add_argument("--options-column", help="a column holding a list, or a mapping from letters to options")
    p.add_argument("--lettered", action="store_true", help="options are in columns A, B, C, ...")
    p.add_argument("--answer-column", help="the correct letter, or the correct option's text")
    p.add_argument("--method", choices=METHODS, default=DEFAULTS.method,
                   help="generate: each model reasons, then its letter is read (default); loglik: the log-"
                        "probability of each option's letter, as lm-evaluation-harness scores MedQA (no generation)")
    p.set_defaults(fn=cmd_create, kind=CHOICE)
    p = commands.add_parser("list", help="evaluations, newest first")
    p.add_argument("--run", type=int, help="only those of this run")
    p.set_defaults(fn=cmd_list)
    p = commands.add_parser("show", help="one evaluation: progress and summary")
    p.add_argument("evaluation_id", type=int)
    p.set_defaults(fn=cmd_show)
    p = commands.add_parser("table", help="a run's finished multiple-choice evaluations side by side (Markdown)")
    p.add_argument("run_id", type=int)
    p.set_defaults(fn=cmd_table)
    p = commands.add_parser("export", help="write an evaluation as CSV or JSONL; prints the path")
    p.add_argument("evaluation_id", type=int)
    p.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    p.add_argument("--out", help="file to write (default: the run's exports folder)")
    p.set_defaults(fn=cmd_export)
