"""Services of the generation app (writes). Split by concern; import from here."""

from generation.services.budget import MAX_EPSILON, epsilon_to_micro
from generation.services.datasets import (
    RISK_TASK,
    dataset_estimate_risk,
    dataset_register,
    dataset_sign_off,
    dataset_update_columns,
    split_holdout,
)
from generation.services.jobs import (
    JOB_LEASE,
    PIPELINE_TASK,
    SynthesisOutput,
    job_claim,
    job_create,
    job_enqueue,
    job_finalize,
    job_report_progress,
    job_set_state,
    job_store_output,
    job_synthesize,
)

__all__ = [
    "JOB_LEASE",
    "MAX_EPSILON",
    "PIPELINE_TASK",
    "RISK_TASK",
    "SynthesisOutput",
    "dataset_estimate_risk",
    "dataset_register",
    "dataset_sign_off",
    "dataset_update_columns",
    "epsilon_to_micro",
    "job_claim",
    "job_create",
    "job_enqueue",
    "job_finalize",
    "job_report_progress",
    "job_set_state",
    "job_store_output",
    "job_synthesize",
    "split_holdout",
]
