"""The services' HTTP APIs, called as the signed-in user (their access token as bearer), as a
browser would call them. The portal holds no domain data: every page is made from these answers.

Failures become exceptions the pages turn into words, never raw JSON or a stack trace:
``ServiceDown`` (no answer, a timeout, 502/503/504: the banner names the service),
``NotSignedIn`` (401: the token ran out; sign in again), ``ApiError`` (any other 4xx/5xx, with the
422's ``loc`` turned into field names: ``field_errors``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from quartier_shared.logging import get_logger

from .error_texts import Gettext, error_text

log = get_logger(__name__)


class ServiceDown(Exception):
    """The service did not answer usefully (the message is its name)."""


class NotSignedIn(Exception):
    pass


@dataclass
class ApiError(Exception):
    status: int
    detail: Any

    def field_errors(self, _: Gettext | None = None) -> dict[str, str]:
        """A 422's errors by field: the first name in each ``loc`` (``["body", "email"]`` -> email),
        each said in the language of ``_`` (``error_texts``; without it, in English)."""
        found: dict[str, str] = {}
        if isinstance(self.detail, list):
            for error in self.detail:
                loc = [part for part in error.get("loc", []) if isinstance(part, str) and part not in {"body", "query"}]
                found.setdefault(loc[0] if loc else "form", error_text(error, _ or str))
        return found

    @property
    def message(self) -> str:
        return self.detail if isinstance(self.detail, str) else ""


@dataclass
class Answer:
    data: Any
    next_cursor: str | None  # of the Link rel="next" header, when another page follows
    content: bytes = b""
    headers: Mapping[str, str] | None = None


class Api:
    """One service's API for one user."""

    def __init__(self, name: str, client: httpx.AsyncClient, token: str | None) -> None:
        self.name = name
        self.client = client
        self.token = token

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        raw: bool = False,
    ) -> Answer:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if content is not None:
            headers["Content-Type"] = "text/csv"
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        try:
            answer = await self.client.request(method, path, params=clean, json=json, content=content, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("service_unreachable", service=self.name, error=type(exc).__name__)
            raise ServiceDown(self.name) from None
        if answer.status_code in (502, 503, 504):
            log.warning("service_unavailable", service=self.name, status=answer.status_code)
            raise ServiceDown(self.name)
        if answer.status_code == 401:
            raise NotSignedIn()
        if answer.status_code >= 400:
            try:
                detail = answer.json().get("detail")
            except ValueError:
                detail = None
            raise ApiError(answer.status_code, detail)
        if raw:
            return Answer(None, None, answer.content, answer.headers)
        next_url = answer.links.get("next", {}).get("url")
        cursor = parse_qs(urlsplit(next_url).query).get("cursor", [None])[0] if next_url else None
        return Answer(answer.json() if answer.content else None, cursor)

    async def get(self, path: str, **params: Any) -> Answer:
        return await self.call("GET", path, params=params)
