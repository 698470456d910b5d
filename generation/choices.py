from django.db import models


class ColumnKind(models.TextChoices):
    NUMERIC = "numeric", "Numeric"
    CATEGORICAL = "categorical", "Categorical"
    BOOLEAN = "boolean", "Boolean"
    DATETIME = "datetime", "Date/time"
    TEXT = "text", "Free text"
    IDENTIFIER = "identifier", "Identifier-like"


class Classification(models.TextChoices):
    DIRECT_IDENTIFIER = "direct_identifier", "Direct identifier"
    QUASI_IDENTIFIER = "quasi_identifier", "Quasi-identifier"
    SENSITIVE = "sensitive", "Sensitive"
    OTHER = "other", "Other"


class DatasetStatus(models.TextChoices):
    PENDING_REVIEW = "pending_review", "Awaiting classification sign-off"
    READY = "ready", "Signed off"
    RETIRED = "retired", "Retired"


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Synthesizing"
    VALIDATING = "validating", "Validating"
    SUCCEEDED = "succeeded", "Published"
    GATE_FAILED = "gate_failed", "Failed the release gate"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINAL_JOB_STATES = (JobState.SUCCEEDED, JobState.GATE_FAILED, JobState.FAILED, JobState.CANCELLED)
