"""Issue and check bearer tokens, and lock out credential pairs that keep failing.

Tokens look like JWTs (three base64url parts) but are opaque random strings to the emulator:
a token is valid while it is in the table and younger than its lifetime. The lifetime is
decided when the token is checked, so a ``token_lifetime_seconds`` fault also shortens tokens
issued before it was set (like an early revocation), while ``expires_in`` keeps saying the
configured lifetime. ``expire_all`` forgets every token.

Lockout follows the documented rate limit: after 5 rejected requests for one (client id,
secret) pair, that pair gets 429 with ``Retry-After: 600`` for 600 seconds. The counter is per
pair, so changing either credential starts afresh. Pairs are kept as hashes, never in clear.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ocrwatch.model import Credentials

LOCKOUT_FAILURES = 5
LOCKOUT_SECONDS = 600.0
_PRUNE_EVERY_TOKENS = 10_000


class TokenCheck(enum.Enum):
    VALID = "valid"
    MISSING = "missing"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    REVOKED_EARLY = "revoked_early"  # expired only because of the token lifetime fault


@dataclass(frozen=True, slots=True)
class Token:
    access_token: str
    expires_in_seconds: int


@dataclass(frozen=True, slots=True)
class LoginRefused:
    """Why the token endpoint said no: an OAuth error code, or a lockout with its wait."""

    error: str  # "invalid_client", or "locked_out"
    retry_after_seconds: int | None = None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class TokenAuthority:
    """Thread-safe token table and lockout counters; ``clock`` is monotonic seconds."""

    def __init__(
        self,
        *,
        credentials: Credentials | None,
        lifetime_seconds: float,
        issuer: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._credentials = credentials
        self._lifetime_seconds = lifetime_seconds
        self._issuer = issuer
        self._clock = clock
        self._lock = threading.Lock()
        self._issued_at: dict[str, float] = {}
        self._failures: dict[bytes, int] = {}
        self._locked_until: dict[bytes, float] = {}

    def login(self, client_id: str, client_secret: str) -> Token | LoginRefused:
        pair = hashlib.sha256(f"{client_id}\0{client_secret}".encode()).digest()
        now = self._clock()
        with self._lock:
            locked_until = self._locked_until.get(pair)
            if locked_until is not None and now < locked_until:
                return LoginRefused("locked_out", retry_after_seconds=int(LOCKOUT_SECONDS))
            if locked_until is not None:
                del self._locked_until[pair]
                self._failures.pop(pair, None)
            if not self._accepts(client_id, client_secret):
                failures = self._failures.get(pair, 0) + 1
                self._failures[pair] = failures
                if failures >= LOCKOUT_FAILURES:
                    self._locked_until[pair] = now + LOCKOUT_SECONDS
                return LoginRefused("invalid_client")
            self._failures.pop(pair, None)
            token = self._new_token(client_id)
            if len(self._issued_at) >= _PRUNE_EVERY_TOKENS:
                self._prune(now)
            self._issued_at[token] = now
        return Token(access_token=token, expires_in_seconds=round(self._lifetime_seconds))

    def _accepts(self, client_id: str, client_secret: str) -> bool:
        if self._credentials is None:
            return bool(client_id)
        # Compare both in constant time so a timing probe learns nothing about either.
        id_ok = hmac.compare_digest(client_id.encode(), self._credentials.client_id.encode())
        secret_ok = hmac.compare_digest(
            client_secret.encode(), self._credentials.client_secret.encode()
        )
        return id_ok and secret_ok

    def _new_token(self, client_id: str) -> str:
        header = _b64url(json.dumps({"alg": "RS256", "typ": "at+jwt"}).encode())
        payload = _b64url(
            json.dumps(
                {
                    "iss": self._issuer,
                    "client_id": client_id,
                    "exp": int(time.time() + self._lifetime_seconds),
                    "jti": secrets.token_hex(16),
                }
            ).encode()
        )
        return f"{header}.{payload}.{_b64url(secrets.token_bytes(32))}"

    def _prune(self, now: float) -> None:
        self._issued_at = {
            token: issued
            for token, issued in self._issued_at.items()
            if now - issued < self._lifetime_seconds
        }

    def check(self, authorization: str | None, *, lifetime_override: float | None) -> TokenCheck:
        """Whether an ``Authorization`` header value carries a token that still works."""
        if not authorization:
            return TokenCheck.MISSING
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return TokenCheck.MISSING
        with self._lock:
            issued_at = self._issued_at.get(token.strip())
        if issued_at is None:
            return TokenCheck.UNKNOWN
        age = self._clock() - issued_at
        if age >= self._lifetime_seconds:
            return TokenCheck.EXPIRED
        if lifetime_override is not None and age >= lifetime_override:
            return TokenCheck.REVOKED_EARLY
        return TokenCheck.VALID

    def expire_all(self) -> None:
        with self._lock:
            self._issued_at.clear()
