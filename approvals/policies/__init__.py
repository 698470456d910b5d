"""Risk tiering as policy-as-code: a YAML rule set (policies/tiering.yaml), its loader and a pure
engine. Which version is active, and publishing new ones, live in approvals.services.policy."""

from approvals.policies.engine import (
    AUDIENCES,
    FACTS,
    FIDELITIES,
    LEVELS,
    PURPOSES,
    Assessment,
    Facts,
    FiredRule,
    Policy,
    Suggestion,
    evaluate,
    suggest,
)
from approvals.policies.loader import PolicyError, Problem, parse_policy

__all__ = [
    "AUDIENCES",
    "FACTS",
    "FIDELITIES",
    "LEVELS",
    "PURPOSES",
    "Assessment",
    "Facts",
    "FiredRule",
    "Policy",
    "PolicyError",
    "Problem",
    "Suggestion",
    "evaluate",
    "parse_policy",
    "suggest",
]
