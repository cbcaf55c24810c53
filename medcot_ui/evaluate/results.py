"""What an evaluation found: blind-rating win rate, ties, raters and their agreement; multiple-choice accuracy.

Accuracy counts an unparsed answer as wrong (it is never guessed) and reports the unparsed rate beside it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import combinations

from medcot_ui.evaluate.loglik import METHOD as LOGLIK, OptionScores
from medcot_ui.evaluate.records import items_of, ratings_of
from medcot_ui.evaluate.stats import Proportion, cohen_kappa, mcnemar_exact, wilson
from medcot_ui.evaluate.tables import CHOICE, EvalItem, EvalRating, Evaluation

RESEARCH_ONLY = "Research use only: not a clinical validation, not for clinical decisions."


@dataclass(frozen=True)
class Agreement:
    raters: tuple[str, str]
    items: int  # rated by both
    kappa: float | None


@dataclass(frozen=True)
class RatingSummary:
    ratings: int
    tuned_wins: int  # ratings (every rater's verdict counted)
    base_wins: int
    ties: int
    neither: int
    items: int  # rated items; the win rate counts each once
    item_verdicts: dict[str, int]  # tuned / base / tie / neither: how many items its raters, together, gave each
    win_rate: Proportion  # items won by tuned among the items that went to one side
    per_rater: dict[str, int] = field(default_factory=dict)
    agreement: list[Agreement] = field(default_factory=list)


def item_verdict(preferred: list[str]) -> str:
    """One item's verdict from all its raters: the side more of them preferred; an even split is a tie, and
    'neither' only when every rater said both answers were unacceptable."""
    net = preferred.count("tuned") - preferred.count("base")
    if net:
        return "tuned" if net > 0 else "base"
    return "neither" if all(p == "neither" for p in preferred) else "tie"


def summarise_ratings(ratings: list[EvalRating]) -> RatingSummary:
    """Counts per rating, but the win rate per item: an item rated by three people is still one observation, so
    pooling ratings would narrow the interval as if each rating were another question."""
    counts = {p: sum(r.preferred == p for r in ratings) for p in ("tuned", "base", "tie", "neither")}
    per_rater: dict[str, dict[int, str]] = defaultdict(dict)
    per_item: dict[int, list[str]] = defaultdict(list)
    for r in ratings:
        per_rater[r.rater][r.item_id] = r.preferred
        per_item[r.item_id].append(r.preferred)
    verdicts = [item_verdict(prefs) for prefs in per_item.values()]
    items = {v: verdicts.count(v) for v in ("tuned", "base", "tie", "neither")}
    agreement = []
    for first, second in combinations(sorted(per_rater), 2):
        shared = sorted(per_rater[first].keys() & per_rater[second].keys())
        if shared:
            kappa = cohen_kappa([per_rater[first][i] for i in shared], [per_rater[second][i] for i in shared])
            agreement.append(Agreement((first, second), len(shared), kappa))
    return RatingSummary(len(ratings), counts["tuned"], counts["base"], counts["tie"], counts["neither"],
                         len(per_item), items, wilson(items["tuned"], items["tuned"] + items["base"]),
                         {name: len(rated) for name, rated in sorted(per_rater.items())}, agreement)


@dataclass(frozen=True)
class ChoiceSummary:
    scored: int  # questions with both answers generated
    base: Proportion
    tuned: Proportion
    base_unparsed: Proportion
    tuned_unparsed: Proportion
    only_base_right: int
    only_tuned_right: int
    p_value: float  # exact McNemar on the paired outcomes
    norm_right: dict[str, tuple[int, int]]  # log-likelihood scoring: (acc_norm right, scored) per side

    @property
    def difference(self) -> float | None:
        return (self.tuned.value - self.base.value) if self.scored else None


def summarise_choices(items: list[EvalItem]) -> ChoiceSummary:
    done = [it for it in items if it.generated("base") and it.generated("tuned")]
    right = {side: [getattr(it, f"{side}_choice") == it.correct for it in done] for side in ("base", "tuned")}
    unparsed = {side: sum(getattr(it, f"{side}_choice") is None for it in done) for side in ("base", "tuned")}
    b = sum(x and not y for x, y in zip(right["base"], right["tuned"]))
    c = sum(y and not x for x, y in zip(right["base"], right["tuned"]))
    n = len(done)
    norm = {side: sum((s := OptionScores.from_json(getattr(it, f"{side}_text"))) is not None
                      and s.norm_choice == it.correct for it in done) for side in ("base", "tuned")}
    return ChoiceSummary(n, wilson(sum(right["base"]), n), wilson(sum(right["tuned"]), n),
                         wilson(unparsed["base"], n), wilson(unparsed["tuned"], n), b, c, mcnemar_exact(b, c),
                         {side: (norm[side], n) for side in ("base", "tuned")})


def side_labels(evaluation: Evaluation) -> tuple[str, str]:
    """How the two sides are named once revealed: (base, tuned)."""
    base = f"run {evaluation.base_run_id}" if evaluation.base_run_id is not None else "base model"
    return base, f"tuned model (run {evaluation.run_id})"


def choice_lines(evaluation: Evaluation, summary: ChoiceSummary) -> list[str]:
    base, tuned = side_labels(evaluation)
    if not summary.scored:
        return ["No question answered by both models yet."]
    if evaluation.method == LOGLIK:
        norm = {side: wilson(*summary.norm_right[side]) for side in ("base", "tuned")}
        return [f"Scored by log-likelihood (lm-evaluation-harness medqa_4options style: \"Question: ...\\nA. ..."
                "\\nAnswer:\", the log-probability of each option's letter; no generation)",
                f"acc, {base}: {summary.base.describe()}",
                f"acc, {tuned}: {summary.tuned.describe()}",
                f"acc_norm (per byte of the option), {base}: {norm['base'].describe()}; {tuned}: "
                f"{norm['tuned'].describe()}",
                f"Paired difference in acc (tuned - base): {summary.difference:+.1%}; only base right "
                f"{summary.only_base_right}, only tuned right {summary.only_tuned_right}; exact McNemar "
                f"p = {summary.p_value:.3g}"]
    return [f"Accuracy, {base}: {summary.base.describe()}",
            f"Accuracy, {tuned}: {summary.tuned.describe()}",
            f"Paired difference (tuned - base): {summary.difference:+.1%}; only base right "
            f"{summary.only_base_right}, only tuned right {summary.only_tuned_right}; exact McNemar "
            f"p = {summary.p_value:.3g}",
            f"Unparsed answers (scored wrong, never guessed): {base} {summary.base_unparsed.describe()}, "
            f"{tuned} {summary.tuned_unparsed.describe()}"]


def rating_lines(evaluation: Evaluation, summary: RatingSummary) -> list[str]:
    base, tuned = side_labels(evaluation)
    if not summary.ratings:
        return ["Not rated yet."]
    items = summary.item_verdicts
    lines = [f"Win rate of {tuned} over {base} (per item, ties and both-unacceptable left out): "
             f"{summary.win_rate.describe()}",
             f"{summary.items} items: tuned better {items['tuned']}, base better {items['base']}, tie {items['tie']}, "
             f"both unacceptable {items['neither']} (an item rated by several people goes to the side more of them "
             "preferred; an even split is a tie)",
             f"{summary.ratings} ratings: tuned better {summary.tuned_wins}, base better {summary.base_wins}, "
             f"tie {summary.ties}, both unacceptable {summary.neither}",
             "Raters: " + ", ".join(f"{name} ({count})" for name, count in summary.per_rater.items())]
    for a in summary.agreement:
        kappa = f"{a.kappa:.2f}" if a.kappa is not None else "undefined (one label throughout)"
        lines.append(f"Agreement {a.raters[0]} / {a.raters[1]}: Cohen's kappa {kappa} on {a.items} shared items")
    return lines


def summary_lines(evaluation: Evaluation) -> list[str]:
    """The evaluation's findings as sentences (the tab, the CLI and the model card show these)."""
    if evaluation.kind == CHOICE:
        lines = choice_lines(evaluation, summarise_choices(items_of(evaluation.id)))
    else:
        lines = rating_lines(evaluation, summarise_ratings(ratings_of(evaluation.id)))
    return lines + [contamination_line(evaluation)]


def contamination_found(evaluation: Evaluation) -> dict[str, int] | None:
    """The check's counts (checked, training_rows, flagged, left_out, evaluated), or None when it never ran."""
    return json.loads(evaluation.contamination_json) if evaluation.contamination_json else None


def contamination_line(evaluation: Evaluation) -> str:
    """What the contamination check found when the evaluation was created."""
    found = contamination_found(evaluation)
    if found is None:
        return "Contamination check: not run (this evaluation was created before the check existed)."
    rule = "64 characters or 13 consecutive words in common"
    if found["left_out"]:
        return (f"Contamination check: {found['left_out']} of {found['checked']} questions shared text with the "
                f"{found['training_rows']} training rows ({rule}) and were left out; the {evaluation.n_items} "
                "evaluated share none.")
    caution = "; their scores may reflect memorised questions" if found["evaluated"] else ""
    return (f"Contamination check: {found['evaluated']} of the {evaluation.n_items} evaluated questions share text "
            f"with the {found['training_rows']} training rows ({rule}){caution}.")


def headline(evaluation: Evaluation) -> str:
    """One line naming what was measured, on what, with which settings."""
    what = "multiple-choice accuracy" if evaluation.kind == CHOICE else "blind A/B rating of held-out answers"
    if evaluation.method == LOGLIK:
        return (f"Evaluation {evaluation.id}: {what} by log-likelihood, N = {evaluation.n_items} questions from "
                f"{evaluation.source}")
    decoding = "greedy" if evaluation.greedy else f"sampled at temperature {evaluation.temperature}"
    return (f"Evaluation {evaluation.id}: {what}, N = {evaluation.n_items} questions from {evaluation.source}; "
            f"{decoding}, up to {evaluation.max_new_tokens} new tokens")
