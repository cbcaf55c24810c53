"""The statistics an evaluation reports, checked against values worked out by hand."""

from __future__ import annotations

import pytest

from medcot_ui.evaluate.stats import cohen_kappa, mcnemar_exact, wilson


def test_the_wilson_interval_of_8_out_of_10_matches_the_hand_computed_one() -> None:
    # p = 0.8, z^2 = 3.8415: centre = (0.8 + 0.19207) / 1.38415 = 0.71674,
    # half = 1.95996 * sqrt(0.016 + 0.0096037) / 1.38415 = 0.22658  ->  0.49016 to 0.94332
    interval = wilson(8, 10)
    assert interval.value == 0.8
    assert interval.low == pytest.approx(0.49016, abs=5e-5)
    assert interval.high == pytest.approx(0.94332, abs=5e-5)


def test_the_wilson_interval_stays_inside_0_and_1_and_is_empty_without_data() -> None:
    none_right = wilson(0, 20)
    assert none_right.low == 0.0 and none_right.high == pytest.approx(0.16113, abs=5e-5)  # z^2 / (n + z^2)
    assert wilson(0, 0).low is None and wilson(0, 0).describe() == "n/a (none)"
    with pytest.raises(ValueError, match="k <= n"):
        wilson(11, 10)


def test_exact_mcnemar_on_a_known_table() -> None:
    # 8 discordant pairs split 1 / 7: P(X <= 1) = (1 + 8) / 256, two-sided p = 18 / 256
    assert mcnemar_exact(1, 7) == pytest.approx(18 / 256)
    assert mcnemar_exact(7, 1) == pytest.approx(18 / 256)
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0


def test_cohens_kappa_on_a_known_table() -> None:
    # 50 items: both yes 20, first yes / second no 5, first no / second yes 10, both no 15.
    # observed 35/50 = 0.7; expected 0.5 * 0.6 + 0.5 * 0.4 = 0.5; kappa = (0.7 - 0.5) / 0.5 = 0.4
    first = ["yes"] * 25 + ["no"] * 25
    second = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(first, second) == pytest.approx(0.4)
    assert cohen_kappa(["a", "b"], ["a", "b"]) == pytest.approx(1.0)
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None  # chance agreement is certain: kappa undefined
    with pytest.raises(ValueError, match="pair them"):
        cohen_kappa(["a"], ["a", "b"])


def test_three_clinicians_rating_the_same_ten_answers_make_ten_observations_not_thirty() -> None:
    """Pooled, the ratings would give 23 of 26 decisive ones: an interval as narrow as 26 questions would give."""
    from medcot_ui.evaluate.results import summarise_ratings
    from medcot_ui.evaluate.tables import EvalRating

    # Items 0-6: all three prefer tuned; 7: two base, one tuned; 8: tuned, base, tie (even split); 9: all neither.
    verdicts = [["tuned"] * 3] * 7 + [["base", "base", "tuned"], ["tuned", "base", "tie"], ["neither"] * 3]
    ratings = [EvalRating(evaluation_id=1, item_id=item, rater=f"Dr {'ABC'[i]}", verdict="A", preferred=p)
               for item, prefs in enumerate(verdicts) for i, p in enumerate(prefs)]
    summary = summarise_ratings(ratings)
    assert summary.ratings == 30 and summary.items == 10
    assert (summary.tuned_wins, summary.base_wins, summary.ties, summary.neither) == (23, 3, 1, 3)
    assert summary.item_verdicts == {"tuned": 7, "base": 1, "tie": 1, "neither": 1}
    assert (summary.win_rate.value, summary.win_rate.low) == (7 / 8, wilson(7, 8).low)
    assert summary.per_rater == {"Dr A": 10, "Dr B": 10, "Dr C": 10}
