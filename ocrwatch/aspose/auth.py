"""Obtain, cache and refresh the OAuth access token shared by every thread of one client.

Invariants: at most one token request is in flight, and a valid cached token is reused until
shortly before it expires (a margin of 10 % of its lifetime, at most 60 s), so N threads make
one token request per lifetime. The lifetime is counted from just before the request was sent,
so the client always believes a token expires no later than the server does.

Hazards: the token endpoint locks a credential pair out (429, ``Retry-After: 600``) after five
failed requests. A refused credential or a 429 is therefore remembered and raised again,
without a request, for a while: a caller looping on errors cannot trip or extend the lockout.

The secret and the token never appear in a log line, an exception message or a repr.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
import structlog

from ocrwatch.aspose import wire
from ocrwatch.aspose.transport import RetryScope, Transport
from ocrwatch.errors import ApiUnavailable, AuthenticationError, OcrwatchError, TransientError
from ocrwatch.model import Credentials

log = structlog.get_logger(__name__)

MAX_REFRESH_MARGIN_SECONDS = 60.0
# How long a refused credential is answered from memory: well beyond a tight retry loop, so
# a caller can never trip the token endpoint's 5-failure lockout (the daemon itself pauses
# all work for the same time after an AuthenticationError).
AUTH_FAILURE_HOLD_SECONDS = 300.0


class NoAuth(requests.auth.AuthBase):
    """No Authorization header; also keeps requests from borrowing one from ~/.netrc."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


class HeaderAuth(requests.auth.AuthBase):
    """Sets ``Authorization`` to a prepared value; its repr never shows the value."""

    def __init__(self, value: str) -> None:
        self.value = value

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self.value
        return request

    def __repr__(self) -> str:
        return "<HeaderAuth>"


@dataclass(frozen=True, slots=True)
class _Token:
    authorization: str = field(repr=False)  # "Bearer <access token>"
    refresh_at: float  # monotonic seconds


@dataclass(frozen=True, slots=True)
class _Hold:
    """A remembered failure, raised again without a request until ``until``."""

    until: float  # monotonic seconds
    make_error: Callable[[float], OcrwatchError]  # given the seconds left


class TokenSource:
    """The ``Authorization`` value for API calls, fetched once and shared under a lock."""

    def __init__(
        self,
        transport: Transport,
        *,
        token_url: str,
        credentials: Credentials,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self._token_url = token_url
        self._credentials = credentials
        self._clock = clock
        self._lock = threading.Lock()
        self._token: _Token | None = None
        self._hold: _Hold | None = None

    def __repr__(self) -> str:
        return f"TokenSource(client_id={self._credentials.client_id!r})"

    def authorization(self) -> str:
        """A valid ``Authorization`` header value, requesting a token only when needed."""
        token = self._token
        if token is not None and self._clock() < token.refresh_at:
            return token.authorization
        with self._lock:
            # Another thread may have refreshed it while this one waited for the lock.
            token = self._token
            if token is not None and self._clock() < token.refresh_at:
                return token.authorization
            self._token = self._request_token(reason="expiring" if token else "first_use")
            return self._token.authorization

    def reject(self, authorization: str) -> None:
        """Forget ``authorization`` after a 401, unless another thread already replaced it."""
        with self._lock:
            if self._token is not None and self._token.authorization == authorization:
                self._token = None
                log.info("token_rejected")

    def _request_token(self, *, reason: str) -> _Token:
        now = self._clock()
        hold = self._hold
        if hold is not None and now < hold.until:
            raise hold.make_error(hold.until - now)
        self._hold = None
        log.debug("token_requested", reason=reason)
        response = self._transport.send(
            "POST",
            self._token_url,
            resource="connect/token",
            scope=RetryScope.IDEMPOTENT,  # a token request creates nothing billable
            headers={"Accept": "application/json"},
            auth=NoAuth(),
            form={
                "grant_type": "client_credentials",
                "client_id": self._credentials.client_id,
                "client_secret": self._credentials.client_secret,
            },
        )
        status = response.status_code
        if status == 200:
            parsed = wire.parse_token(response.content)
            if parsed is None:
                raise TransientError(
                    "the token endpoint answered 200 without a usable access_token",
                    status_code=status,
                )
            access_token, token_type, lifetime_seconds = parsed
            margin_seconds = min(MAX_REFRESH_MARGIN_SECONDS, 0.1 * lifetime_seconds)
            log.info(
                "token_refreshed" if reason != "first_use" else "token_obtained",
                lifetime_seconds=lifetime_seconds,
                reason=reason,
            )
            return _Token(
                authorization=f"{token_type} {access_token}",
                refresh_at=now + lifetime_seconds - margin_seconds,
            )
        if status == 429:
            retry_after = wire.parse_retry_after(response.headers.get("Retry-After"))
            message = (
                "the token endpoint refuses requests for now (429: too many failed "
                "token requests for these credentials); check the client id and secret"
            )
            log.warning("token_request_throttled", status=status, retry_after_seconds=retry_after)
            if retry_after:
                self._hold = _Hold(
                    until=self._clock() + retry_after,
                    make_error=lambda left: ApiUnavailable(
                        message, status_code=429, retry_after_seconds=left
                    ),
                )
            raise ApiUnavailable(message, status_code=429, retry_after_seconds=retry_after)
        if status >= 500 or status == 408:
            retry_after = wire.parse_retry_after(response.headers.get("Retry-After"))
            raise ApiUnavailable(
                f"the token endpoint is unavailable (HTTP {status})",
                status_code=status,
                retry_after_seconds=retry_after,
            )
        message = self._refusal_message(response)
        log.warning("token_request_refused", status=status)
        self._hold = _Hold(
            until=self._clock() + AUTH_FAILURE_HOLD_SECONDS,
            make_error=lambda _left: AuthenticationError(message, status_code=status),
        )
        raise AuthenticationError(message, status_code=status)

    def _refusal_message(self, response: requests.Response) -> str:
        client_id = self._credentials.client_id
        code = wire.oauth_error(response.content)
        if code == "invalid_client":
            return (
                f"the OCR service refused the credentials of client id {client_id!r} "
                "(invalid_client): check the client id and client secret of the Aspose Cloud "
                "application (a new application can take a while to become active)"
            )
        detail = wire.redact(
            wire.problem_detail(response.content), (self._credentials.client_secret,)
        )
        return (
            f"the token endpoint refused client id {client_id!r} "
            f"(HTTP {response.status_code}: {detail or 'no detail'}); "
            "check the client id, client secret and base_url"
        )
