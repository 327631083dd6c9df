"""Answer one HTTP request of the API: route it, inject faults, authenticate, act, count.

Routes (case-insensitive, under ``/v5.0/ocr/`` and ``/v5.0/``): RecognizeImage,
RecognizeImageTrial (no token needed), RecognizeLabel, RecognizeRegions, RecognizePdf with
POST, GET ``?id=`` and DELETE ``?id=``; ``Utilities/GetTaskStatus`` with GET; and
``POST /connect/token``. Any other path is 404 (that includes the API's other resources:
receipts, tables, invoices, fonts, DetectRegions, DjVu2PDF, preprocessing, text to speech);
a wrong method on a known path is 405. Tasks are global by id: a GET on any recognition path
finds any task, and the trial path reads without a token.

Order of decisions for a known route: the fault draw (a fault answers before anything changes,
so a faulted POST creates no task), then the token, then the request itself. Latency delays
the answer after it was decided. 404 and 405 are never faulted.

The account's refusals come first of all: a plan without the API answers 403 and an exhausted
quota 402 (or 403) to every API call, as ProblemDetails; the real answers are undocumented.
A POST whose body is larger than ``max_upload_bytes`` is answered 413 and creates no task; one
whose file holds ``forbidden_content`` is answered 403 (that file only) and creates none.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

import structlog

from ocrwatch.emulator.auth import LoginRefused, TokenAuthority, TokenCheck
from ocrwatch.emulator.faults import FaultInjector, FaultKind, RequestFault
from ocrwatch.emulator.stats import Counters
from ocrwatch.emulator.tasks import TaskTable
from ocrwatch.emulator.tokenform import parse_token_request
from ocrwatch.emulator.wire import (
    Resource,
    ValidationFailed,
    ocr_response,
    parse_submission,
    problem,
    validation_problem,
)

log = structlog.get_logger(__name__)

JSON = "application/json; charset=utf-8"
PROBLEM_JSON = "application/problem+json; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
TOKEN_PATH = "/connect/token"
STATUS_PROBE = "utilities/gettaskstatus"
INJECTED_TASK_ERROR = "An error occurred while recognizing the image (injected fault)"
_RESOURCES = {resource.value.lower(): resource for resource in Resource}
_PREFIXES = ("/v5.0/ocr/", "/v5.0/")
_METHODS = {TOKEN_PATH: ("POST",), STATUS_PROBE: ("GET",)}  # recognition resources: all three


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str  # the request target: path and query, as sent
    headers: Mapping[str, str]  # names in lower case
    body: bytes


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    is_reset: bool = False  # drop the connection without answering
    delay_seconds: float = 0.0


def _route(path: str) -> Resource | str | None:
    """The resource, TOKEN_PATH or STATUS_PROBE that ``path`` names, else None."""
    lowered = urllib.parse.unquote(path).lower().rstrip("/")
    if lowered == TOKEN_PATH:
        return TOKEN_PATH
    for prefix in _PREFIXES:
        if lowered.startswith(prefix):
            rest = lowered[len(prefix) :]
            if rest == STATUS_PROBE:
                return STATUS_PROBE
            if rest in _RESOURCES:
                return _RESOURCES[rest]
    return None


class Api:
    def __init__(
        self,
        *,
        tasks: TaskTable,
        authority: TokenAuthority,
        injector: FaultInjector,
        counters: Counters,
        processing_seconds: tuple[float, float],
        max_upload_bytes: int | None = None,
        forbidden_content: bytes | None = None,
    ) -> None:
        self._max_upload_bytes = max_upload_bytes
        self._forbidden_content = forbidden_content
        self._tasks = tasks
        self._authority = authority
        self._injector = injector
        self._counters = counters
        self._processing_seconds = processing_seconds

    def handle(self, request: Request) -> Reply:
        parts = urllib.parse.urlsplit(request.target)
        route = _route(parts.path)
        if route is None:
            return Reply(
                404, problem(404, detail="No such resource", instance=parts.path), PROBLEM_JSON
            )
        allowed = _METHODS.get(route, ("POST", "GET", "DELETE"))
        if request.method not in allowed:
            body = problem(405, detail=f"{request.method} is not allowed", instance=parts.path)
            return Reply(405, body, PROBLEM_JSON, (("Allow", ", ".join(allowed)),))
        fault = self._injector.for_request(is_token_endpoint=route == TOKEN_PATH)
        if fault.latency_seconds > 0:
            self._counters.add_fault(FaultKind.LATENCY)
        if route == TOKEN_PATH:
            self._counters.add("token_requests")
        if fault.kind is not None:
            self._counters.add_fault(fault.kind)
            log.debug("emulator_fault_injected", kind=str(fault.kind), path=parts.path)
            return self._fault_reply(fault, instance=parts.path)
        return dataclasses.replace(
            self._dispatch(request, route, parts), delay_seconds=fault.latency_seconds
        )

    def _dispatch(
        self, request: Request, route: Resource | str, parts: urllib.parse.SplitResult
    ) -> Reply:
        if route == TOKEN_PATH:
            return self._token(request)
        is_trial = isinstance(route, Resource) and route.is_trial
        if not is_trial and (denied := self._authenticate(request, instance=parts.path)):
            return denied
        if isinstance(route, Resource) and request.method == "POST":
            return self._submit(request, route)
        task_ids = urllib.parse.parse_qs(parts.query).get("id", [])
        task_id = next((value.strip() for value in task_ids if value.strip()), None)
        if task_id is None:
            return Reply(
                400, validation_problem({"id": ["The id field is required."]}), PROBLEM_JSON
            )
        if request.method == "DELETE":
            self._counters.add("deletes")
            self._tasks.cancel(task_id)
            return Reply(200)
        is_probe = route == STATUS_PROBE
        self._counters.add("status_probes" if is_probe else "fetches")
        result = self._tasks.read(task_id)
        return Reply(200, ocr_response(result, include_results=not is_probe), JSON)

    def _fault_reply(self, fault: RequestFault, *, instance: str) -> Reply:
        if fault.kind is FaultKind.QUOTA_EXHAUSTED:
            detail = "The API call quota of the subscription is exhausted"
            body = problem(fault.status, detail=detail, instance=instance)
            return Reply(fault.status, body, PROBLEM_JSON)
        if fault.kind is FaultKind.PLAN_REFUSED:
            detail = "The subscription plan does not include this API"
            return Reply(403, problem(403, detail=detail, instance=instance), PROBLEM_JSON)
        if fault.kind is FaultKind.CONNECTION_RESET:
            return Reply(0, is_reset=True, delay_seconds=fault.latency_seconds)
        if fault.kind is FaultKind.TOO_MANY_REQUESTS:
            body = problem(429, detail="Too many requests; retry later", instance=instance)
            headers = (("Retry-After", str(fault.retry_after_seconds)),)
            return Reply(429, body, PROBLEM_JSON, headers, delay_seconds=fault.latency_seconds)
        if fault.status == 500:
            body = problem(500, detail="An unexpected error occurred", instance=instance)
            return Reply(500, body, PROBLEM_JSON, delay_seconds=fault.latency_seconds)
        # A gateway in front of the service answers 502-504 with a bare HTML page.
        reason = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
        page = (
            f"<html><head><title>{fault.status} {reason[fault.status]}</title></head>"
            f"<body><h1>{fault.status} {reason[fault.status]}</h1></body></html>\n"
        )
        hint: tuple[tuple[str, str], ...] = ()
        if fault.retry_after_seconds:
            hint = (("Retry-After", str(fault.retry_after_seconds)),)
        return Reply(
            fault.status,
            page.encode("ascii"),
            "text/html",
            hint,
            delay_seconds=fault.latency_seconds,
        )

    def _authenticate(self, request: Request, *, instance: str) -> Reply | None:
        check = self._authority.check(
            request.headers.get("authorization"),
            lifetime_override=self._injector.faults.token_lifetime_seconds,
        )
        if check is TokenCheck.VALID:
            return None
        if check is TokenCheck.REVOKED_EARLY:
            self._counters.add_fault(FaultKind.TOKEN_REVOKED_EARLY)
        self._counters.add("unauthorized")
        detail = {
            TokenCheck.MISSING: "No bearer token was provided",
            TokenCheck.UNKNOWN: "The access token is invalid",
        }.get(check, "The access token has expired")
        error = "" if check is TokenCheck.MISSING else ', error="invalid_token"'
        return Reply(
            401,
            problem(401, detail=detail, instance=instance),
            PROBLEM_JSON,
            (("WWW-Authenticate", f"Bearer{error}"),),
        )

    def _token(self, request: Request) -> Reply:
        form = parse_token_request(
            request.body,
            content_type=request.headers.get("content-type"),
            authorization=request.headers.get("authorization"),
        )
        no_store = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))
        if form.grant_type != "client_credentials":
            self._counters.add("token_failures")
            error = "invalid_request" if form.grant_type is None else "unsupported_grant_type"
            return Reply(400, _oauth_error(error), JSON, no_store)
        outcome = self._authority.login(form.client_id or "", form.client_secret or "")
        if isinstance(outcome, LoginRefused):
            self._counters.add("token_failures")
            log.info("emulator_token_refused", reason=outcome.error)
            if outcome.retry_after_seconds is not None:
                headers = (*no_store, ("Retry-After", str(outcome.retry_after_seconds)))
                return Reply(429, _oauth_error("too_many_requests"), JSON, headers)
            return Reply(400, _oauth_error(outcome.error), JSON, no_store)
        body = {
            "access_token": outcome.access_token,
            "expires_in": outcome.expires_in_seconds,
            "token_type": "Bearer",
        }
        return Reply(200, json.dumps(body).encode("utf-8"), JSON, no_store)

    def _submit(self, request: Request, resource: Resource) -> Reply:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in ("application/json", "text/json") and not (
            content_type.startswith("application/") and content_type.endswith("+json")
        ):
            body = problem(
                415,
                detail="Send the request as application/json",
                instance=f"/v5.0/ocr/{resource.value}",
            )
            return Reply(415, body, PROBLEM_JSON)
        if self._max_upload_bytes is not None and len(request.body) > self._max_upload_bytes:
            self._counters.add_fault(FaultKind.PAYLOAD_TOO_LARGE)
            detail = f"The request body is larger than {self._max_upload_bytes} bytes"
            instance = f"/v5.0/ocr/{resource.value}"
            return Reply(413, problem(413, detail=detail, instance=instance), PROBLEM_JSON)
        try:
            submission = parse_submission(request.body, resource=resource)
        except ValidationFailed as exc:
            return Reply(400, validation_problem(exc.errors), PROBLEM_JSON)
        if self._forbidden_content and self._forbidden_content in submission.document:
            self._counters.add_fault(FaultKind.CONTENT_FORBIDDEN)
            detail = "The request was refused by a content rule"
            instance = f"/v5.0/ocr/{resource.value}"
            return Reply(403, problem(403, detail=detail, instance=instance), PROBLEM_JSON)
        fault = self._injector.for_task(self._processing_seconds)
        forced_error = INJECTED_TASK_ERROR if fault.is_error and not fault.is_stuck else None
        if fault.is_stuck:
            self._counters.add_fault(FaultKind.TASK_STUCK)
        elif forced_error is not None:
            self._counters.add_fault(FaultKind.TASK_ERROR)
        task_id = self._tasks.submit(
            submission,
            processing_seconds=fault.processing_seconds,
            forced_error=forced_error,
            is_stuck=fault.is_stuck,
        )
        self._counters.add_submit(resource.value)
        log.debug("emulator_task_submitted", task_id=task_id, resource=resource.value)
        return Reply(200, task_id.encode("ascii"), TEXT)


def _oauth_error(code: str) -> bytes:
    return json.dumps({"error": code}).encode("utf-8")
