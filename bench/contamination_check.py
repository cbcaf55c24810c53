"""Contamination check at the issue's size: 25,000 training rows x 1,300 evaluation questions, on the CPU.

Synthetic text: words drawn from a 20,000-word vocabulary (Zipf-like, so common words repeat as in prose);
training rows of about 500 words (question + reasoning + answer of medical-o1-reasoning-SFT), questions of about
130 words (MedQA-USMLE). ``--planted`` questions copy 80 characters of a training row, as many again copy 60 of its
characters only (about 8 words: a near miss under both rules, which must not be flagged). Prints a table; the check must find exactly the planted ones.

    python bench/contamination_check.py [--rows 25000] [--questions 1300] [--planted 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medcot_ui.evaluate.contamination import check_contamination  # noqa: E402


def make_texts(rows: int, questions: int, planted: int, seed: int = 0) -> tuple[list[str], list[str], set[int]]:
    rng = random.Random(seed)
    vocab = [f"w{i}" + "".join(rng.choice("aeiourstnl") for _ in range(rng.randint(2, 8))) for i in range(20_000)]
    weights = [1 / (rank + 10) for rank in range(len(vocab))]

    def words(n: int) -> list[str]:
        return rng.choices(vocab, weights=weights, k=n)

    training = [" ".join(words(rng.randint(350, 650))) for _ in range(rows)]
    asked = [" ".join(words(rng.randint(90, 170))) for _ in range(questions)]
    flagged = set(rng.sample(range(questions), 2 * planted))
    copied, near = sorted(flagged)[:planted], sorted(flagged)[planted:]
    for q in copied:
        source = training[rng.randrange(rows)]
        at = rng.randrange(len(source) - 100)
        asked[q] = asked[q][:200] + " " + source[at:at + 80] + " " + asked[q][200:]
    for q in near:
        source = training[rng.randrange(rows)]
        at = rng.randrange(len(source) - 100)
        asked[q] = asked[q][:200] + " zzz " + source[at:at + 60] + " zzz " + asked[q][200:]
    return training, asked, set(copied)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=25_000)
    parser.add_argument("--questions", type=int, default=1_300)
    parser.add_argument("--planted", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    training, asked, planted = make_texts(args.rows, args.questions, args.planted)
    chars = sum(map(len, training))
    times, report = [], None
    for _ in range(args.repeat):
        start = time.perf_counter()
        report = check_contamination(asked, training)
        times.append(time.perf_counter() - start)
    assert report is not None
    found = set(report.flagged)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("| training rows | training text | questions | planted (80 chars) | near misses (60 chars) | flagged "
          "| missed | wrong | median s | min s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.rows:,} | {chars / 1e6:.1f} M chars | {args.questions:,} | {len(planted)} | {args.planted} "
          f"| {len(found)} | {len(planted - found)} | {len(found - planted)} | {statistics.median(times):.2f} "
          f"| {min(times):.2f} | {peak_mb:,.0f} |")
    if found != planted:
        raise SystemExit("the check did not flag exactly the planted questions")


if __name__ == "__main__":
    main()
