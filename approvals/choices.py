from django.db import models


class Audience(models.TextChoices):
    INTERNAL = "internal", "Internal (my team)"
    ORGANIZATION = "organization", "Organization (all signed-in users)"
    EXTERNAL = "external", "External (outside the organization)"


class RequestStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    IN_REVIEW = "in_review", "In review"
    CHANGES_REQUESTED = "changes_requested", "Changes requested"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    GENERATING = "generating", "Generating"
    VALIDATING = "validating", "Validating"
    PUBLISHED = "published", "Published"
    GATE_FAILED = "gate_failed", "Failed the release gate"
    # A bake-off whose candidates are validated, at least one passing: someone picks one to publish.
    AWAITING_CHOICE = "awaiting_choice", "Candidates ready: choose one to publish"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class DecisionKind(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"
    REQUEST_CHANGES = "request_changes", "Request changes"


class TierLevel(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    PROHIBITED = "prohibited", "Prohibited"


class Fidelity(models.TextChoices):
    LOW = "low", "Low (right columns and types; rough distributions)"
    MEDIUM = "medium", "Medium (realistic distributions)"
    HIGH = "high", "High (realistic relationships between columns)"


class PurposeCategory(models.TextChoices):
    MODEL_DEVELOPMENT = "model_development", "Model development"
    RESEARCH = "research", "Research"
    EDUCATION = "education", "Education and training"
    SOFTWARE_TESTING = "software_testing", "Software testing"
    EXTERNAL_SHARING = "external_sharing", "Sharing outside the organization"


class AttemptSource(models.TextChoices):
    SYNTHESIZED = "synthesized", "Synthesized by SynthGate"
    UPLOADED = "uploaded", "Uploaded by the requester"


class OverrideStatus(models.TextChoices):
    PENDING = "pending", "Awaiting a second approver"
    APPROVED = "approved", "Approved: published despite the failed gate"
    DECLINED = "declined", "Declined"


class RetryStatus(models.TextChoices):
    PENDING = "pending", "Awaiting a privacy officer"
    APPROVED = "approved", "Approved: the retry was queued"
    REFUSED = "refused", "Refused"


class RequestKind(models.TextChoices):
    """What a request asks for. Fixed when it is filed (an edit never changes it)."""

    SYNTHETIC_TABLE = "synthetic_table", "Synthetic table"
    # A differentially private model (generation.modeling) trained on the declared outcome.
    DP_MODEL = "dp_model", "Differentially private model"
    # A model trained across sites without pooling their rows (the federation app).
    FEDERATED_STUDY = "federated_study", "Federated study"
