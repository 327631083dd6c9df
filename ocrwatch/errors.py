"""The exception tree, split by what the caller does next, and the process exit codes.

- ``ConfigError``: fix the configuration; never retried; exit 78.
- ``AuthenticationError``: the credentials are wrong or refused; never retried in a loop.
- ``QuotaExhausted``: the account's plan or quota refuses calls; every file waits (the daemon
  pauses submissions and probes now and then), none is failed for it.
- ``TransientError``: wait (honouring ``retry_after_seconds``) and try again.
- ``PermanentError``: this file will never succeed as it is; it goes to the error folder.
- ``StateStoreError``: the state file is unusable; exit and let the supervisor restart.

Messages never contain a secret or a token: exceptions are logged and printed as they are.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence


class ExitCode(enum.IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2
    UNAVAILABLE = 69  # EX_UNAVAILABLE: the service could not be reached
    SOFTWARE = 70  # EX_SOFTWARE: a bug; one `crashed` log line says where, no traceback
    TEMPFAIL = 75  # EX_TEMPFAIL: the account's plan or quota refuses calls; try again later
    STATE = 74  # EX_IOERR: the state store is unusable
    CONFIG = 78  # EX_CONFIG: systemd's RestartPreventExitStatus=78 stops a restart loop
    INTERRUPTED = 130


class OcrwatchError(Exception):
    """Base of every error ocrwatch raises on purpose."""

    exit_code: ExitCode = ExitCode.FAILURE


class ConfigError(OcrwatchError):
    """The configuration is invalid; ``problems`` lists every error found, with its key path."""

    exit_code = ExitCode.CONFIG

    def __init__(self, problems: Sequence[str] | str) -> None:
        self.problems: tuple[str, ...] = (
            (problems,) if isinstance(problems, str) else tuple(problems)
        )
        super().__init__("\n".join(self.problems))


class InvalidSetting(ConfigError, ValueError):
    """One recognition setting has a value the API does not accept."""

    def __init__(self, field_name: str, value: object, *, allowed: Sequence[str]) -> None:
        self.field_name = field_name
        self.value = value
        self.allowed = tuple(allowed)
        shown = ", ".join(self.allowed[:12])
        if len(self.allowed) > 12:
            shown += f", ... ({len(self.allowed)} values in all)"
        super().__init__(f"{field_name}: {value!r} is not allowed; allowed: {shown}")


class AuthenticationError(OcrwatchError):
    """The service refused the credentials (``invalid_client``) or a fresh token."""

    exit_code = ExitCode.CONFIG

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        self.status_code = status_code
        super().__init__(message)


class _RetryLater(OcrwatchError):
    """Waiting helps: the HTTP status, if one came, and the service's ``Retry-After`` hint."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        self.status_code = status_code
        self.retry_after_seconds = retry_after_seconds
        super().__init__(message)


class QuotaExhausted(_RetryLater):
    """The account may not make this call now: 402, or 403 that a fresh token did not cure.

    Neither the file nor the service is at fault: the plan's quota ran out or the plan lacks
    the API. Retrying soon only repeats the refusal; waiting (or a top-up) is what helps.
    """

    exit_code = ExitCode.TEMPFAIL


class TransientError(_RetryLater):
    """Worth retrying later; ``retry_after_seconds`` is the service's own hint, if it gave one."""

    exit_code = ExitCode.UNAVAILABLE


class ApiUnavailable(TransientError):
    """The service answered 429 or 5xx, or could not be reached."""


class SubmitOutcomeUnknown(TransientError):
    """A POST may have reached the service but no answer came back (e.g. a read timeout).

    The task may exist and be billed; resubmitting may bill twice. The caller decides.
    """


class PermanentError(OcrwatchError):
    """Retrying the same input will fail the same way."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        self.status_code = status_code
        super().__init__(message)


class ApiRejected(PermanentError):
    """The service rejected the request (400, 404, 415, other 4xx; 413 is ``PayloadTooLarge``)."""

    def __init__(self, message: str, *, status_code: int | None = None, detail: str = "") -> None:
        self.detail = detail
        super().__init__(message, status_code=status_code)


class PayloadTooLarge(ApiRejected):
    """The service refused the upload as too large (413); ``size_bytes`` is the file's size."""

    def __init__(
        self, message: str, *, size_bytes: int | None, detail: str = "", status_code: int = 413
    ) -> None:
        self.size_bytes = size_bytes
        super().__init__(message, status_code=status_code, detail=detail)


class InputFileError(PermanentError):
    """The file itself cannot be processed (unreadable, not a regular file, unsupported)."""

    def __init__(self, message: str, *, path: str = "") -> None:
        self.path = path
        super().__init__(message)


class SourceChanged(InputFileError):
    """The file is no longer the one that settled (rewritten, replaced): settle it again."""


class SourceVanished(OcrwatchError):
    """The file is no longer at its path (deleted, or a folder on its way renamed): forget it.

    Not an ``InputFileError``: nothing is wrong with any file, so nothing goes to the error
    folder and no failure is counted.
    """


class StateStoreError(OcrwatchError):
    exit_code = ExitCode.STATE
