from __future__ import annotations

from django.db import models


class ValidationReport(models.Model):
    """Results of the utility and privacy tests for one job, and the gate's verdict.

    `metrics` holds aggregates only (scores, counts, rates), never rows of either table.
    """

    job = models.OneToOneField("generation.SynthesisJob", on_delete=models.CASCADE, related_name="validation")
    metrics = models.JSONField(default=dict)
    checks = models.JSONField(default=list)
    passed = models.BooleanField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"validation of {self.job_id}: {'pass' if self.passed else 'fail'}"
