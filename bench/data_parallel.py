"""Data-parallel scaling: the recipe through the app's job (queue + worker + torchrun) with 1, 2, ... training
processes, one per GPU, on the random-init 8B of bench/gpu_training.py.

Every layout keeps the recipe's per-GPU work (batch 2 x accumulation 4), so each step takes N times the rows and,
with perfect scaling, the same time. Scaling efficiency = tokens/s with N GPUs / (N x tokens/s with one). Layouts
run alternately (1 2 4 1 2 4 ...) in one launch.

    python bench/data_parallel.py --work /tmp/medcot-gpu --gpus 1,2,4,8 --rounds 2 --max-steps 40
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gpu_training import run_app  # noqa: E402 - the same job runner as the single-GPU bench


def table(results: list[dict]) -> str:
    ok = [r for r in results if "error" not in r]
    layouts = sorted({r["gpus"] for r in results})
    rate = {n: statistics.median(r["tokens_per_s"] for r in ok if r["gpus"] == n)
            for n in layouts if any(r["gpus"] == n for r in ok)}
    lines = ["| GPUs | runs | steady s/step (median) | real tokens/s | peak GPU mem per GPU (GB) | scaling efficiency |",
             "|---|---|---|---|---|---|"]
    for n in layouts:
        runs = [r for r in ok if r["gpus"] == n]
        if not runs:
            failed = next(r for r in results if r["gpus"] == n)
            lines.append(f"| {n} | 0 | failed: {failed['error'][-200:]!r} | | | |")
            continue
        efficiency = f"{rate[n] / (n * rate[1]):.1%}" if 1 in rate else "-"
        lines.append(f"| {n} | {len(runs)} | {statistics.median(r['s_per_step'] for r in runs):.3f} | "
                     f"{rate[n]:,.0f} | {max(r['peak_mem_gb'] for r in runs):.1f} | {efficiency} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/medcot-gpu"))
    p.add_argument("--gpus", default="1,2", help="layouts to compare, e.g. 1,2,4,8")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--max-steps", type=int, default=40)
    p.add_argument("--logging-steps", type=int, default=5)
    p.add_argument("--steady-after", type=int, default=10, help="steps left out of the steady s/step (warm-up)")
    args = p.parse_args()
    if not (args.work / "model" / "config.json").exists():
        subprocess.run([sys.executable, str(ROOT / "bench" / "make_random_8b.py"), str(args.work)], check=True)
    results_file = args.work / "data-parallel.jsonl"
    for rnd in range(args.rounds):
        for n in (int(g) for g in args.gpus.split(",")):
            r = run_app(args.work, args.max_steps, args.logging_steps, args.steady_after, "recipe",
                        f"gpus{n}-{rnd}", {"training.num_processes": n})
            r.update(gpus=n, round=rnd)
            print(json.dumps(r)[:400], flush=True)
            with open(results_file, "a") as fh:
                fh.write(json.dumps(r) + "\n")
    print(table([json.loads(line) for line in results_file.read_text().splitlines()]))


if __name__ == "__main__":
    main()
