"""The Aspose.OCR Cloud v5 client: submit a file, poll its task, fetch its results, cancel it.

Callers get ``ocrwatch.model`` values and ``ocrwatch.errors`` exceptions, never a response:

- ``ApiUnavailable`` (transient): unreachable, 429 (with ``retry_after_seconds``), 5xx, 408.
- ``SubmitOutcomeUnknown`` (transient): a POST may have created a task but no answer came.
- ``QuotaExhausted``: 402, or a 403 that survives one fresh token (the Java SDK takes a 403
  for an expired token): the account's plan or quota refuses calls; nothing is wrong with
  the file.
- ``PayloadTooLarge`` (permanent): 413, with the file's size.
- ``ApiRejected`` (permanent): any other 4xx, with the ProblemDetails summary as ``detail``.
- ``AuthenticationError``: refused credentials, or a 401 that survives one fresh token.
- ``TransientError``: a 200 whose body is not what the API sends (a proxy's page).

Trial mode (no credentials) can only recognise images, on ``RecognizeImageTrial``, without an
Authorization header. That resource has no cheap status probe, so ``status()`` in trial mode
is a full ``fetch()``.

TLS verification is always on; plain ``http://`` is accepted only for loopback hosts (the
local emulator), so a token or secret never crosses a network unencrypted.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import io
import ipaddress
import time
import urllib.parse
from types import TracebackType
from typing import BinaryIO

import requests
import structlog

from ocrwatch.aspose import wire
from ocrwatch.aspose.auth import HeaderAuth, NoAuth, TokenSource
from ocrwatch.aspose.body import Base64JsonBody
from ocrwatch.aspose.transport import RetryScope, Timeouts, Transport
from ocrwatch.errors import (
    ApiRejected,
    ApiUnavailable,
    AuthenticationError,
    ConfigError,
    PayloadTooLarge,
    QuotaExhausted,
    SubmitOutcomeUnknown,
)
from ocrwatch.model import Credentials, Mode, RecognitionSettings, TaskResult, parse_enum

log = structlog.get_logger(__name__)


def _version() -> str:
    try:
        return importlib.metadata.version("ocrwatch")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


DEFAULT_USER_AGENT = f"ocrwatch/{_version()}"


class OcrClient:
    """One configured connection to the OCR service; safe to share between worker threads."""

    def __init__(
        self,
        base_url: str,
        *,
        credentials: Credentials | None,
        timeouts: Timeouts = Timeouts(),  # noqa: B008 - a frozen value, safe as a default
        pool_size: int = 10,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        self._base_url = _checked_base_url(base_url)
        if credentials is not None and not (credentials.client_id and credentials.client_secret):
            raise ConfigError("credentials: both client_id and client_secret must be set")
        self._credentials = credentials
        self._transport = Transport(timeouts=timeouts, pool_size=pool_size, user_agent=user_agent)
        self._tokens = (
            TokenSource(
                self._transport,
                token_url=self._base_url + wire.TOKEN_PATH,
                credentials=credentials,
            )
            if credentials is not None
            else None
        )

    @property
    def is_trial(self) -> bool:
        """True without credentials: only Mode.IMAGE, on the masked trial resource."""
        return self._tokens is None

    def __repr__(self) -> str:
        client_id = self._credentials.client_id if self._credentials else None
        return f"OcrClient(base_url={self._base_url!r}, client_id={client_id!r})"

    def __enter__(self) -> OcrClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    def submit(self, mode: Mode, source: bytes | BinaryIO, settings: RecognitionSettings) -> str:
        """Upload ``source`` for recognition and return the new task's id.

        A seekable file is streamed from its current position and left wherever the upload
        ended; a non-seekable one is read into memory first.
        """
        mode = parse_enum(Mode, mode, field_name="mode")
        if self.is_trial and mode is not Mode.IMAGE:
            raise ConfigError(
                f"trial mode (no credentials) can only use mode image, not {mode.value}; "
                "configure a client id and secret to use other modes"
            )
        prefix, suffix = wire.body_affixes(wire.settings_json(mode, settings))
        body = Base64JsonBody(_seekable(source), prefix=prefix, suffix=suffix)
        resource = wire.resource_for(mode, is_trial=self.is_trial)
        started = time.monotonic()
        response = self._call(
            "POST",
            resource,
            scope=RetryScope.UNSENT_ONLY,
            headers={"Content-Type": "application/json", "Accept": "text/plain"},
            body=body,
        )
        task_id = wire.parse_task_id(response.content)
        if task_id is None:
            raise SubmitOutcomeUnknown(
                f"{resource} answered HTTP {response.status_code} without a task id; "
                "the task may exist"
            )
        log.debug(
            "task_submitted",
            resource=resource,
            task_id=task_id,
            size_bytes=body.source_size_bytes,
            elapsed_ms=round((time.monotonic() - started) * 1000),
        )
        return task_id

    def fetch(self, task_id: str, *, mode: Mode) -> TaskResult:
        """The task's state and, once completed, its decoded result files."""
        resource = wire.resource_for(
            parse_enum(Mode, mode, field_name="mode"), is_trial=self.is_trial
        )
        response = self._call(
            "GET",
            resource,
            scope=RetryScope.IDEMPOTENT,
            headers={"Accept": "application/json"},
            task_id=_checked_task_id(task_id),
        )
        return wire.parse_ocr_response(response.content, task_id=task_id)

    def status(self, task_id: str, *, mode: Mode) -> TaskResult:
        """The task's state without its results (in trial mode a full fetch; see the module)."""
        if self.is_trial:
            return self.fetch(task_id, mode=mode)
        response = self._call(
            "GET",
            wire.STATUS_RESOURCE,
            scope=RetryScope.IDEMPOTENT,
            headers={"Accept": "application/json"},
            task_id=_checked_task_id(task_id),
        )
        result = wire.parse_ocr_response(response.content, task_id=task_id)
        return dataclasses.replace(result, results=())  # a probe promises no results

    def cancel(self, task_id: str, *, mode: Mode) -> None:
        """Ask the service to drop the task (DELETE) from its queue."""
        resource = wire.resource_for(
            parse_enum(Mode, mode, field_name="mode"), is_trial=self.is_trial
        )
        self._call(
            "DELETE",
            resource,
            scope=RetryScope.IDEMPOTENT,
            headers={},
            task_id=_checked_task_id(task_id),
        )
        log.debug("task_cancelled", resource=resource, task_id=task_id)

    def _call(
        self,
        method: str,
        resource: str,
        *,
        scope: RetryScope,
        headers: dict[str, str],
        body: Base64JsonBody | None = None,
        task_id: str | None = None,
    ) -> requests.Response:
        """Send with authentication; one fresh token and one retry after a 401 or 403."""
        url = self._base_url + wire.API_PREFIX + resource
        params = {"id": task_id} if task_id is not None else None
        for is_first_try in (True, False):
            authorization = self._tokens.authorization() if self._tokens else None
            response = self._transport.send(
                method,
                url,
                resource=resource,
                scope=scope,
                headers=headers,
                auth=HeaderAuth(authorization) if authorization else NoAuth(),
                params=params,
                body=body,
                task_id=task_id,
            )
            status = response.status_code
            can_refresh = self._tokens is not None and authorization is not None
            if status == 403 and is_first_try and can_refresh:
                # The Java SDK takes a 403 for an expired token: one fresh token, then it is
                # the account's plan or quota speaking (_raise_for_status).
                assert self._tokens is not None and authorization is not None
                self._tokens.reject(authorization)
                continue
            if status != 401:
                self._raise_for_status(
                    response, resource=resource, authorization=authorization, body=body
                )
                return response
            if self._tokens is None or authorization is None:
                raise AuthenticationError(
                    f"{resource} asked for credentials (HTTP 401); trial mode cannot use it",
                    status_code=401,
                )
            # A 401 means the request was not processed, so repeating a POST bills nothing.
            self._tokens.reject(authorization)
            if not is_first_try:
                break
        raise AuthenticationError(
            f"{resource} refused a freshly issued token (HTTP 401); the credentials "
            "may lack access to the OCR API",
            status_code=401,
        )

    def _raise_for_status(
        self,
        response: requests.Response,
        *,
        resource: str,
        authorization: str | None,
        body: Base64JsonBody | None,
    ) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        secrets = [authorization or "", authorization.split(" ", 1)[-1] if authorization else ""]
        if self._credentials is not None:
            secrets.append(self._credentials.client_secret)
        detail = wire.redact(wire.problem_detail(response.content), secrets)
        retry_after = wire.parse_retry_after(response.headers.get("Retry-After"))
        log.info(
            "api_request_rejected",
            resource=resource,
            status=status,
            retry_after_seconds=retry_after,
        )
        if status in {408, 429} or status >= 500 or status < 200:
            reason = "is throttling requests" if status == 429 else "is unavailable"
            raise ApiUnavailable(
                f"the OCR service {reason} ({resource}: HTTP {status}"
                + (f": {detail}" if detail else "")
                + ")",
                status_code=status,
                retry_after_seconds=retry_after,
            )
        if status in (402, 403):
            raise QuotaExhausted(
                f"the OCR service refuses calls for this account ({resource}: HTTP {status}"
                + (f": {detail}" if detail else "")
                + "); the plan's quota may be used up or the plan may not include the API",
                status_code=status,
                retry_after_seconds=retry_after,
            )
        if status == 413:
            size = body.source_size_bytes if body is not None else None
            shown = (
                f"the file is {size:,} bytes ({len(body):,} in the request)"
                if body is not None
                else ""
            )
            raise PayloadTooLarge(
                f"the OCR service refused the upload as too large ({resource}: HTTP 413"
                + (f": {detail}" if detail else "")
                + (f"); {shown}" if shown else ")"),
                size_bytes=size,
                detail=detail,
            )
        if 300 <= status < 400:
            detail = f"redirected to {response.headers.get('Location', '?')}; check base_url"
        raise ApiRejected(
            f"the OCR service rejected the request ({resource}: HTTP {status}"
            + (f": {detail}" if detail else "")
            + ")",
            status_code=status,
            detail=detail,
        )


def _checked_base_url(base_url: str) -> str:
    parts = urllib.parse.urlsplit(base_url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"base_url: {base_url!r} must be an https:// URL with a host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"base_url: {base_url!r} must not carry a query, fragment or login")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"base_url: {base_url!r} uses plain http to a host that is not this machine; "
            "use https (plain http is only for a local emulator on 127.0.0.1, ::1 or localhost)"
        )
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _checked_task_id(task_id: str) -> str:
    if not isinstance(task_id, str) or not task_id.strip():
        raise ValueError(f"task_id must be a non-empty string, not {task_id!r}")
    return task_id


def _seekable(source: bytes | BinaryIO) -> BinaryIO:
    if isinstance(source, bytes | bytearray | memoryview):
        return io.BytesIO(source)
    if source.seekable():
        return source
    return io.BytesIO(source.read())  # a pipe: the only case held in memory
