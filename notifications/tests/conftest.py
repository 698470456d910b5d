from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model


@pytest.fixture
def with_emails(db: Any) -> Callable[..., None]:
    """with_emails(user, ...) gives each user username@example.org."""

    def give(*users: Any) -> None:
        for user in users:
            user.email = f"{user.username}@example.org"
            get_user_model().objects.filter(pk=user.pk).update(email=user.email)

    return give
