"""Decide, per request and per task, which configured fault strikes, from one seeded stream.

Every decision draws from a single ``random.Random(seed)`` under a lock, so a run with the
same seed and the same sequence of requests injects the same faults. Each draw is made
whether or not its fault is enabled, so turning one fault on does not reshuffle the others.

The account's refusals are not drawn: a plan refusal answers every API call, and a quota
counts the API calls it let through (token requests are free) and refuses every one after.
"""

from __future__ import annotations

import enum
import random
import threading
from dataclasses import dataclass

from ocrwatch.emulator.config import Faults

_SERVER_ERROR_STATUSES = (500, 502, 503, 504)


class FaultKind(enum.StrEnum):
    """The keys of ``EmulatorStats.faults``."""

    SERVER_ERROR = "server_error"
    TOO_MANY_REQUESTS = "too_many_requests"
    CONNECTION_RESET = "connection_reset"
    TASK_ERROR = "task_error"
    TASK_STUCK = "task_stuck"
    LATENCY = "latency"
    TOKEN_REVOKED_EARLY = "token_revoked_early"
    QUOTA_EXHAUSTED = "quota_exhausted"
    PLAN_REFUSED = "plan_refused"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    CONTENT_FORBIDDEN = "content_forbidden"


@dataclass(frozen=True, slots=True)
class RequestFault:
    """What happens to one request instead of (or on top of) its normal handling."""

    kind: FaultKind | None  # a request fault (or the account's refusal), or None
    status: int = 0
    retry_after_seconds: int = 0
    latency_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class TaskFault:
    is_stuck: bool
    is_error: bool
    processing_seconds: float


class FaultInjector:
    def __init__(self, faults: Faults, *, seed: int) -> None:
        self._faults = faults
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._calls_used = 0  # API calls counted against ``faults.quota_calls``

    @property
    def faults(self) -> Faults:
        return self._faults

    def set_faults(self, faults: Faults) -> None:
        """Inject ``faults`` from now on; a different quota starts a new billing period."""
        with self._lock:
            if faults.quota_calls != self._faults.quota_calls:
                self._calls_used = 0
            self._faults = faults

    def _account_refusal(self, faults: Faults) -> RequestFault | None:
        """The account's answer to one API call (under the lock): a refusal, or None."""
        if faults.plan_refused:
            return RequestFault(FaultKind.PLAN_REFUSED, status=403)
        if faults.quota_calls is not None and self._calls_used >= faults.quota_calls:
            return RequestFault(FaultKind.QUOTA_EXHAUSTED, status=faults.quota_status)
        self._calls_used += 1
        return None

    def for_request(self, *, is_token_endpoint: bool) -> RequestFault:
        with self._lock:
            faults, draw = self._faults, self._random
            reset, error, busy = draw.random(), draw.random(), draw.random()
            status = draw.choice(_SERVER_ERROR_STATUSES)
            low, high = faults.latency_seconds
            latency = draw.uniform(low, high)
            refusal = None if is_token_endpoint else self._account_refusal(faults)
        if refusal is not None:
            return refusal
        if is_token_endpoint:
            latency = 0.0  # logging in stays quick, so a test can hold back one API answer
        if reset < faults.connection_reset:
            return RequestFault(FaultKind.CONNECTION_RESET, latency_seconds=latency)
        # Retry-After carries whole seconds; round up so a client never comes back early.
        wait = max(int(-(-faults.retry_after_seconds // 1)), 0)
        if error < faults.server_error:
            hint = wait if status == 503 and faults.unavailable_retry_after else 0
            return RequestFault(
                FaultKind.SERVER_ERROR,
                status=status,
                retry_after_seconds=hint,
                latency_seconds=latency,
            )
        if busy < faults.too_many_requests and not is_token_endpoint:
            return RequestFault(
                FaultKind.TOO_MANY_REQUESTS,
                status=429,
                retry_after_seconds=wait,
                latency_seconds=latency,
            )
        return RequestFault(None, latency_seconds=latency)

    def for_task(self, processing_seconds: tuple[float, float]) -> TaskFault:
        with self._lock:
            faults, draw = self._faults, self._random
            stuck, error = draw.random(), draw.random()
            low, high = processing_seconds
            seconds = draw.uniform(low, high)
        return TaskFault(
            is_stuck=stuck < faults.task_stuck,
            is_error=error < faults.task_error,
            processing_seconds=seconds,
        )
