"""Send one HTTP request to the OCR service with explicit timeouts and safe in-call retries.

Everything network-level is decided here: which failures are retried inside the call, and
which exception a failure that remains becomes. HTTP status codes are not looked at; the
caller maps them.

Retries: an idempotent request (GET, DELETE, a token request) is retried a few times with a
short backoff on any connection error or read timeout. A submit POST is retried only when the
request provably never reached the server (connection refused, DNS failure, connect timeout);
anything later (a reset after sending, a read timeout) may have created a billed task, so it
becomes ``SubmitOutcomeUnknown`` and the caller decides. Long waits are never slept here.

Thread safety: one ``requests.Session`` is shared by every worker thread; its connection pool
is sized for them and nothing else mutable is shared.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
import structlog
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, NewConnectionError

from ocrwatch.aspose.body import Base64JsonBody
from ocrwatch.errors import ApiUnavailable, ConfigError, SubmitOutcomeUnknown

log = structlog.get_logger(__name__)

# Sleeps between attempts inside one call: short, so a worker is never parked for long.
BACKOFF_SECONDS = (0.1, 0.4)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-request limits: to open a connection, and between two reads of the answer."""

    connect_seconds: float = 5.0
    read_seconds: float = 60.0

    def __post_init__(self) -> None:
        for name in ("connect_seconds", "read_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"timeouts.{name}: {value!r} must be a number above 0")


class RetryScope(enum.Enum):
    IDEMPOTENT = "idempotent"  # repeatable: retry connection errors and read timeouts
    UNSENT_ONLY = "unsent_only"  # a submit: retry only what provably never left this host


class Transport:
    """A pooled session that sends requests and turns network failures into ocrwatch errors."""

    def __init__(self, *, timeouts: Timeouts, pool_size: int, user_agent: str) -> None:
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ConfigError(f"pool_size: {pool_size!r} must be an integer of at least 1")
        self._timeouts = timeouts
        self._session = requests.Session()
        self._session.headers["User-Agent"] = user_agent
        # Retries are ours (below), so the adapter makes exactly one attempt per send.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)

    def close(self) -> None:
        self._session.close()

    def send(
        self,
        method: str,
        url: str,
        *,
        resource: str,
        scope: RetryScope,
        headers: Mapping[str, str],
        auth: requests.auth.AuthBase,
        params: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
        body: Base64JsonBody | None = None,
        task_id: str | None = None,
    ) -> requests.Response:
        """One logical request; raises ``ApiUnavailable`` or ``SubmitOutcomeUnknown``."""
        attempts = len(BACKOFF_SECONDS) + 1
        for attempt in range(1, attempts + 1):
            if body is not None:
                body.rewind()
            data: Any = body if body is not None else form
            started = time.monotonic()
            try:
                response = self._session.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    headers=dict(headers),
                    auth=auth,
                    timeout=(self._timeouts.connect_seconds, self._timeouts.read_seconds),
                    allow_redirects=False,
                    verify=True,
                )
            except requests.exceptions.SSLError as exc:
                # A failed TLS handshake sent nothing, and repeating it will not fix a certificate.
                self._log_failure(method, resource, task_id, started, exc, attempt=attempt)
                raise ApiUnavailable(
                    f"TLS with the OCR service failed ({_reason(exc)}); "
                    "check the system CA certificates and base_url"
                ) from None
            except requests.exceptions.RequestException as exc:
                self._log_failure(method, resource, task_id, started, exc, attempt=attempt)
                is_unsent = _is_provably_unsent(exc)
                is_retryable = is_unsent or scope is RetryScope.IDEMPOTENT
                if is_retryable and attempt < attempts:
                    time.sleep(BACKOFF_SECONDS[attempt - 1])
                    continue
                raise _classify(exc, resource=resource, scope=scope, is_unsent=is_unsent) from None
            log.debug(
                "api_request",
                method=method,
                resource=resource,
                status=response.status_code,
                task_id=task_id,
                elapsed_ms=_elapsed_ms(started),
                attempt=attempt,
            )
            return response
        raise AssertionError("unreachable: the loop returns or raises")

    def _log_failure(
        self,
        method: str,
        resource: str,
        task_id: str | None,
        started: float,
        exc: requests.exceptions.RequestException,
        *,
        attempt: int,
    ) -> None:
        log.info(
            "api_request_failed",
            method=method,
            resource=resource,
            task_id=task_id,
            elapsed_ms=_elapsed_ms(started),
            attempt=attempt,
            error=type(exc).__name__,
            reason=_reason(exc),
        )


def _is_provably_unsent(exc: requests.exceptions.RequestException) -> bool:
    """True when the failure happened before a connection existed, so no byte was sent."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ProxyError):
        return False  # the proxy may have forwarded the request before failing
    if isinstance(exc, requests.exceptions.ConnectionError) and exc.args:
        wrapped = exc.args[0]
        # Connection refused and DNS failures arrive as NewConnectionError inside MaxRetryError.
        return isinstance(wrapped, MaxRetryError) and isinstance(wrapped.reason, NewConnectionError)
    return False


def _classify(
    exc: requests.exceptions.RequestException,
    *,
    resource: str,
    scope: RetryScope,
    is_unsent: bool,
) -> ApiUnavailable | SubmitOutcomeUnknown:
    reason = _reason(exc)
    if is_unsent:
        return ApiUnavailable(f"could not connect to the OCR service ({resource}): {reason}")
    if scope is RetryScope.UNSENT_ONLY:
        return SubmitOutcomeUnknown(
            f"the upload to {resource} may have reached the OCR service but no answer came "
            f"back ({reason}); the task may exist"
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return ApiUnavailable(f"the OCR service did not answer in time ({resource}): {reason}")
    return ApiUnavailable(f"the connection to the OCR service failed ({resource}): {reason}")


def _reason(exc: BaseException) -> str:
    """The innermost cause's class and message, without the pool's long preamble."""
    inner: BaseException = exc
    while True:
        nested = inner.args[0] if inner.args and isinstance(inner.args[0], BaseException) else None
        if isinstance(inner, MaxRetryError) and inner.reason is not None:
            nested = inner.reason
        if nested is None:
            break
        inner = nested
    text = " ".join(str(inner).split())
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(inner).__name__}: {text}" if text else type(inner).__name__


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
