"""A small HTTP client for tests that drive a live server the way external clients do."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests


class ApiClient:
    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base = base_url.rstrip("/") + "/api/v1"
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Token {token}"

    @classmethod
    def signed_in(cls, base_url: str, username: str, password: str, otp: str | None = None) -> ApiClient:
        """A client holding a fresh token; `otp` is the current code of a user with a second factor."""
        body = {"username": username, "password": password}
        if otp is not None:
            body["otp"] = otp
        response = requests.post(f"{base_url}/api/v1/auth/token/", json=body, timeout=30)
        assert response.status_code == 200, response.text
        return cls(base_url, response.json()["token"])

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.base + path, timeout=60, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.post(self.base + path, timeout=60, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.patch(self.base + path, timeout=60, **kwargs)


def wait_for(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")
        time.sleep(interval)
