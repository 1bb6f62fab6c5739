"""A small HTTP client for the API tests (the standard library's, so the tests need nothing
the server does not): status, headers and body of every answer, errors included."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message
from typing import Any


@dataclass
class Answer:
    status: int
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        assert "json" in (self.headers.get("Content-Type") or ""), self.headers
        return json.loads(self.body)


class Api:
    def __init__(self, base: str, auth: tuple[str, str] | None = None) -> None:
        self.base = base.rstrip("/")
        self.auth = auth

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | Iterable[bytes] | None = None,  # an iterable goes chunked
    ) -> Answer:
        data = raw
        all_headers = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        if self.auth is not None:
            token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            all_headers.setdefault("Authorization", f"Basic {token}")
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers=all_headers
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Answer(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            with error:
                return Answer(error.code, error.headers, error.read())

    def get(self, path: str, **kwargs: Any) -> Answer:
        return self.request("GET", path, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return self.request("PUT", path, body, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return self.request("POST", path, body, **kwargs)

    def delete(self, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return self.request("DELETE", path, body, **kwargs)

    def json(self, path: str) -> Any:
        answer = self.get(path)
        assert answer.status == 200, (path, answer.status, answer.body[:500])
        return answer.json()
