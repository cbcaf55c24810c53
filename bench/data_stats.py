"""Dataset tab bench: load + validate + format + tokenise statistics (+ identifier scan) for N synthetic rows.

Rows have realistic length (question ~60 words, reasoning ~500, answer ~100), built from the demo data's
words so the tokenizer sees real vocabulary. The work goes through ``dataset_report.analyse``, the function
the Dataset tab calls, and its progress callback times each stage. Prints a table:

    python bench/data_stats.py [--rows 20000] [--model demo:tiny-llama] [--max-seq-length 2048]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medcot_ui.training.config import DataSettings  # noqa: E402
from medcot_ui.settings import DEMO_DATA_FILE  # noqa: E402


def synthetic_rows(n: int, seed: int = 0) -> list[dict[str, str]]:
    words = " ".join(json.loads(line)[k] for line in DEMO_DATA_FILE.read_text(encoding="utf-8").splitlines()
                     if line.strip() for k in ("Question", "Complex_CoT", "Response")).split()
    rnd = random.Random(seed)

    def text(mean: int) -> str:
        return " ".join(rnd.choices(words, k=max(5, int(rnd.gauss(mean, mean / 5)))))

    return [{"Question": text(60) + "?", "Complex_CoT": text(500), "Response": text(100)} for _ in range(n)]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--model", default="demo:tiny-llama", help="whose tokenizer counts (local or demo)")
    parser.add_argument("--max-seq-length", type=int, default=2048)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="medcot-bench-"))
    os.environ.setdefault("MEDCOT_HOME", str(home))
    from medcot_ui.data.stats import tokenizer_for
    from medcot_ui.data.report import analyse

    path = home / "rows.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for row in synthetic_rows(args.rows):
            fh.write(json.dumps(row) + "\n")
    tokenizer_for(args.model)  # builds the demo model once; not part of what a user waits for per load
    marks: list[tuple[str, float, float]] = []

    def progress(_: float, what: str) -> None:
        stage = what.split(":")[0]
        if not marks or marks[-1][0] != stage:
            marks.append((stage, time.perf_counter(), cpu_s()))

    rss_before, started, cpu_before = rss_mb(), time.perf_counter(), cpu_s()
    report = analyse(DataSettings(source="file", file_path=str(path), split="train", eval_size=200),
                     args.model, args.max_seq_length, progress=progress)
    wall, cpu = time.perf_counter() - started, cpu_s() - cpu_before
    if report.error:
        raise SystemExit(f"analyse failed: {report.error}")
    stats = report.stats
    total_tokens = sum(stats.counts["total"])

    print(f"Dataset bench: {args.rows:,} rows, {path.stat().st_size / 2**20:.0f} MB JSONL, tokenizer "
          f"{stats.tokenizer}, max_seq_length {args.max_seq_length}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    print(f"{'stage':<32}{'wall s':>9}{'cpu s':>9}")
    for (stage, t0, c0), (_, t1, c1) in zip(marks, marks[1:]):
        print(f"{stage:<32}{t1 - t0:>9.2f}{c1 - c0:>9.2f}")
    print(f"{'total (load+validate+stats)':<32}{wall:>9.2f}{cpu:>9.2f}")
    print(f"tokens counted: {total_tokens:,} ({total_tokens / wall:,.0f} tokens/s wall); rows truncated: "
          f"{len(stats.truncated):,}; tokens per epoch: {stats.tokens_per_epoch:,}")
    print(f"peak RSS: {rss_mb():,.0f} MB (before the load: {rss_before:,.0f} MB, so +{rss_mb() - rss_before:,.0f} MB)")
    print(f"goal: under 30 s wall -> {'met' if wall < 30 else 'NOT met'}")


if __name__ == "__main__":
    main()
