from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models

from core.roles import Role


class Team(models.Model):
    """A group of users; releases for an internal audience are visible to the requester's team."""

    name = models.CharField(max_length=80, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    """A portal user. One role decides what they may do; the team decides what they may see."""

    role = models.CharField(max_length=32, choices=Role.choices, default=Role.DATA_SCIENTIST)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.PROTECT, related_name="members")

    class Meta:
        ordering = ["username"]

    @property
    def role_label(self) -> str:
        return Role(self.role).label
