"""The bake-off's pure rules: who picks, how candidates are scored and recommended, the front."""

from __future__ import annotations

from typing import Any

from approvals.bakeoff import choose_refusal, recommend, riskiest, score, total_budget
from approvals.charts import pareto_front


def test_the_requester_picks_and_for_a_high_tier_only_a_privacy_officer_does(
    alice: Any, bob: Any, olivia: Any
) -> None:
    assert choose_refusal(alice, requester_id=alice.pk, tier_level="low") == ""
    assert choose_refusal(bob, requester_id=alice.pk, tier_level="medium")
    assert choose_refusal(olivia, requester_id=alice.pk, tier_level="medium")
    assert choose_refusal(alice, requester_id=alice.pk, tier_level="high")
    assert choose_refusal(olivia, requester_id=alice.pk, tier_level="high") == ""


def _checks(**values: float) -> list[dict[str, Any]]:
    return [{"name": name, "value": value, "passed": True} for name, value in values.items()]


def test_the_recommendation_is_the_passing_candidate_with_the_best_utility() -> None:
    rows = [
        {
            "index": 0,
            "passed": True,
            "epsilon_micro": None,
            "score": score(_checks(column_shape_similarity=0.8)),
        },
        {
            "index": 1,
            "passed": False,
            "epsilon_micro": None,
            "score": score(_checks(column_shape_similarity=0.99)),
        },
        {
            "index": 2,
            "passed": True,
            "epsilon_micro": None,
            "score": score(_checks(column_shape_similarity=0.9)),
        },
    ]
    assert recommend(rows) == 2
    assert recommend([{**r, "passed": False} for r in rows]) is None


def test_privacy_risk_is_the_worst_attack_with_membership_auc_mapped_to_advantage() -> None:
    result = score(_checks(inference_risk=0.05, membership_inference_auc=0.6, column_shape_similarity=0.9))
    assert result.privacy_risk == 0.2 and result.utility == 0.9


def test_the_pareto_front_drops_candidates_beaten_on_both_axes() -> None:
    # (risk, utility): the second is worse than the first on both; the third trades risk for utility.
    assert pareto_front([(0.1, 0.8), (0.2, 0.7), (0.3, 0.9)]) == [0, 2]


def test_approval_reserves_the_sum_and_the_policy_judges_the_riskiest_candidate() -> None:
    candidates = [
        {"synthesizer": "dp_copula", "epsilon_micro": 200_000, "delta_atto": None},
        {"synthesizer": "dp_copula", "epsilon_micro": 700_000, "delta_atto": None},
    ]
    assert total_budget(candidates) == (900_000, None)
    assert riskiest(candidates)["epsilon_micro"] == 700_000
    plain = {"synthesizer": "gaussian_copula", "epsilon_micro": None, "delta_atto": None}
    assert riskiest([*candidates, plain]) is plain
