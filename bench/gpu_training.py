"""Side-by-side GPU bench: the reference script vs the app's own job (queue + worker + training process).

Arms run alternately (A B A B ...) in one launch on the same random-init 8B and the same rows:
  ref   bench/reference_recipe.py (the walk-through as a plain script)
  app   the app's job with the reference recipe config, through `medcot enqueue` + `python -m jobs.worker`
  fast  the app's job with the "fast" preset (packing, larger micro-batches; same data)
  sweep:NAME:FLAGS  the reference script with extra flags (used to search for the fast preset)

    python bench/gpu_training.py --work /tmp/medcot-gpu --arms ref,app --rounds 3 --max-steps 30 --logging-steps 5
    python bench/gpu_training.py --report A.jsonl B.jsonl   # one table from several launches' results
    python bench/gpu_training.py --lane gpu0 --arms ref,app,ref --rounds 1 ...   # and on GPU 1 at the same time:
    python bench/gpu_training.py --lane gpu1 --arms app,ref,app --rounds 1 ...   # balanced: each run its own round

Steady s/step is the median over logging windows after the first ``--steady-after`` steps (model load, warmup
and compile excluded); real tokens/s counts non-padding tokens (TRL's num_tokens). HFU counts 6 x 8.03 G FLOP per token:
forward, backward to the activations (the base is frozen, so no weight gradients) and the recomputed forward
of gradient checkpointing, against the ~790 TFLOP/s bf16 this H200 class measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PARAMS = 8.03e9
PEAK_FLOPS = 790e12


def run_ref(work: Path, max_steps: int, logging_steps: int, steady_after: int, flags: str = "") -> dict:
    cmd = [sys.executable, str(ROOT / "bench" / "reference_recipe.py"), "--model", str(work / "model"),
           "--data", str(work / "rows.jsonl"), "--max-steps", str(max_steps), "--logging-steps", str(logging_steps),
           "--output-dir", str(work / "ref-out"), *shlex.split(flags)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        return {"error": (out.stdout + out.stderr)[-3000:], "wall_s": wall}
    r = json.loads(line[len("RESULT "):])
    times = r["step_times"][steady_after:]
    tok = dict(r["tokens"])
    steps = sorted(tok)
    first = next((s for s in steps if s >= steady_after), steps[0] if steps else 0)
    windows = [(a, b) for a, b in zip(steps, steps[1:]) if a >= first]
    rates = [(tok[b] - tok[a]) / sum(r["step_times"][a:b]) for a, b in windows]
    per_window = [sum(r["step_times"][a:b]) / (b - a) for a, b in windows]
    return {"s_per_step": statistics.median(per_window) if per_window else statistics.median(times),
            "mean_s_per_step": statistics.mean(times),
            "tokens_per_s": statistics.median(rates) if rates else None, "peak_mem_gb": r["peak_mem_gb"],
            "load_s": r["load_s"], "wall_s": wall}


def run_app(work: Path, max_steps: int, logging_steps: int, steady_after: int, preset: str, arm: str,
            overrides: dict | None = None) -> dict:
    home = work / f"home-{arm}"
    env = dict(os.environ, MEDCOT_HOME=str(home), PYTHONUNBUFFERED="1")
    from medcot_ui.training.presets import PRESETS

    config = PRESETS[preset]().with_overrides({
        "model.base_model": str(work / "model"), "data.source": "file", "data.file_path": str(work / "rows.jsonl"),
        "data.split": "train", "training.max_steps": max_steps, "training.logging_steps": logging_steps,
        "name": f"bench-{arm}", **(overrides or {})})
    cfg = work / f"{arm}.yaml"
    cfg.write_text(config.to_yaml())
    subprocess.run([sys.executable, "-m", "medcot", "enqueue", str(cfg)], check=True, env=env, cwd=ROOT,
                   capture_output=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "jobs.worker", "--max-runs", "1", "--exit-when-idle"], env=env, cwd=ROOT,
                   capture_output=True)
    wall = time.perf_counter() - t0
    db = sqlite3.connect(home / "runs.db")
    run_id, status, error = db.execute("SELECT id, status, error FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    if status != "succeeded":
        log = (home / "runs" / f"run-{run_id}" / "train.log").read_text()[-3000:]
        return {"error": f"{status}: {error}\n{log}", "wall_s": wall}
    rows = db.execute("SELECT step, seconds_per_step, tokens_per_s, gpu_mem_gb FROM metrics WHERE run_id = ? "
                      "AND loss IS NOT NULL ORDER BY step", (run_id,)).fetchall()
    steady = [r for r in rows if r[0] > steady_after and r[1]]
    summary = json.loads((home / "runs" / f"run-{run_id}" / "summary.json").read_text())
    return {"s_per_step": statistics.median(r[1] for r in steady),
            "mean_s_per_step": statistics.mean(r[1] for r in steady),
            "tokens_per_s": statistics.median(r[2] for r in steady if r[2]),
            "peak_mem_gb": max(r[3] or 0 for r in rows), "wall_s": wall, "backend": summary.get("backend")}


def hfu(tokens_per_s: float | None) -> float | None:
    return 6 * PARAMS * tokens_per_s / PEAK_FLOPS if tokens_per_s else None


def report(results: list[dict]) -> str:
    by_arm: dict[str, list[dict]] = {}
    for r in results:
        by_arm.setdefault(r["arm"], []).append(r)
    lines = ["| arm | runs | steady s/step (median) | mean s/step incl. checkpoints | real tokens/s | "
             "peak GPU mem (GB) | HFU | tokens/s vs ref |", "|---|---|---|---|---|---|---|---|"]
    ref_rate = None
    if "ref" in by_arm:
        ok = [r["tokens_per_s"] for r in by_arm["ref"] if r.get("tokens_per_s")]
        ref_rate = statistics.median(ok) if ok else None
    for arm, rs in by_arm.items():
        ok = [r for r in rs if "error" not in r]
        if not ok:
            lines.append(f"| {arm} | {len(rs)} | failed: {rs[0]['error'][-200:]!r} | | | | | |")
            continue
        sps = statistics.median(r["s_per_step"] for r in ok)
        mean_sps = statistics.mean(r.get("mean_s_per_step", r["s_per_step"]) for r in ok)
        tps = statistics.median(r["tokens_per_s"] for r in ok)
        mem = max(r["peak_mem_gb"] for r in ok)
        ratio = f"{tps / ref_rate:.3f}x" if ref_rate else "-"
        lines.append(f"| {arm} | {len(ok)} | {sps:.3f} | {mean_sps:.3f} | {tps:,.0f} | {mem:.1f} | {hfu(tps):.1%} "
                     f"| {ratio} |")
    return "\n".join(lines)


def per_round(results: list[dict]) -> str:
    """Each round's s/step and tokens/s, in launch order, with app / ref for each round that has both (with
    ``--lane``, a round is one run per lane: the runs that ran at the same time on two GPUs)."""
    lines = []
    for rnd in sorted({r["round"] for r in results}):
        row = {r["arm"]: r for r in results if r["round"] == rnd and "error" not in r}
        cells = [f"{r.get('lane', '')} {arm} {r['s_per_step']:.3f} s/step {r['tokens_per_s']:,.0f} tok/s".lstrip()
                 for arm, r in row.items()]
        if "ref" in row and "app" in row:
            cells.append(f"app/ref tokens/s {row['app']['tokens_per_s'] / row['ref']['tokens_per_s']:.3f}x")
        lines.append(f"round {rnd}: " + "; ".join(cells))
    return "\n".join(lines)


def run_arm(arm: str, work: Path, args: argparse.Namespace, rnd: int) -> dict:
    steps = (args.max_steps, args.logging_steps, args.steady_after)
    if arm == "ref":
        return run_ref(work, *steps)
    if arm.startswith("sweep:"):
        return run_ref(work, *steps, arm.split(":", 2)[2])
    return run_app(work, *steps, "recipe" if arm == "app" else arm, f"{arm}-{rnd}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/medcot-gpu"))
    p.add_argument("--arms", default="ref,app,fast")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--max-steps", type=int, default=30)
    p.add_argument("--logging-steps", type=int, default=5)
    p.add_argument("--steady-after", type=int, default=10, help="steps left out of the steady s/step (warm-up)")
    p.add_argument("--results", type=Path, help="append results here (JSON lines) and report all of them")
    p.add_argument("--report", type=Path, nargs="+", help="only print the table of these results files")
    p.add_argument("--lane", help="this launch's name (e.g. gpu0) when two launch side by side on two GPUs: each "
                   "run is then its own round, so the report pairs the runs that ran at the same time")
    args = p.parse_args()
    if args.report:
        results = [json.loads(line) for f in args.report if f.exists() for line in f.read_text().splitlines()]
        print(report(results))
        print(per_round(results))
        return
    if not (args.work / "model" / "config.json").exists():
        subprocess.run([sys.executable, str(ROOT / "bench" / "make_random_8b.py"), str(args.work)], check=True)
    results_file = args.results or args.work / "results.jsonl"
    arms = args.arms.split(",")
    for rnd in range(args.rounds):
        for slot, arm in enumerate(arms):  # alternating: A B A B ...
            label = rnd * len(arms) + slot if args.lane else rnd
            r = run_arm(arm, args.work, args, label)
            r.update(arm=arm, round=label, max_steps=args.max_steps, **({"lane": args.lane} if args.lane else {}))
            print(json.dumps(r)[:400], flush=True)
            with open(results_file, "a") as fh:
                fh.write(json.dumps(r) + "\n")
    all_results = [json.loads(line) for line in results_file.read_text().splitlines()]
    print(report(all_results))
    print(per_round(all_results))


if __name__ == "__main__":
    main()
