"""The vocabulary of the config file: the keys it accepts, the spellings of values, the defaults.

The key tuples are the single list of what the YAML may say: the readers reject anything else
with "unknown key; allowed: ...", and a test checks ``config.example.yaml`` documents each one.
"""

from __future__ import annotations

import re

from ocrwatch import formats
from ocrwatch.model import Mode, ResultFormat

DEFAULT_URL = "https://api.aspose.cloud"
# The compatible server with the local OCR engine, started inside the daemon on loopback.
EMBEDDED_URL = "embedded"
DEFAULT_INCLUDE = formats.DEFAULT_INCLUDE  # every format either target can be given
DEFAULT_OUTPUT_TEMPLATE = "{name}.{ext}"
# A file unchanged for five minutes and still not a complete image or PDF is broken: a scanner
# pausing between pages resumes well within that.
DEFAULT_INCOMPLETE_AFTER_SECONDS = 300.0
ENV_CLIENT_ID = "OCRWATCH_CLIENT_ID"
ENV_CLIENT_SECRET = "OCRWATCH_CLIENT_SECRET"
SYSTEMD_CREDENTIAL = "client_secret"  # LoadCredential=client_secret:/path in the unit file
RESULT_TYPE_NAMES: dict[str, ResultFormat] = {
    "text": ResultFormat.TEXT,
    "pdf": ResultFormat.PDF,
    "hocr": ResultFormat.HOCR,
    "json": ResultFormat.JSON,
}
TEMPLATE_PLACEHOLDERS = ("name", "stem", "suffix", "ext", "inbox")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("auto", "console", "json", "journal")
INBOX_MODES = (Mode.IMAGE, Mode.LABEL, Mode.REGIONS)  # PDFs in an image inbox go to RecognizePdf

_TOP_KEYS = (
    "service", "state", "rescan_interval_seconds", "logging", "metrics", "defaults", "inboxes",
)  # fmt: skip
_METRICS_KEYS = ("listen", "textfile", "interval_seconds")
_HOOK_KEYS = ("on_success", "on_failure", "webhook", "timeout_seconds")
_SERVICE_KEYS = (
    "url", "client_id", "client_secret_file", "connect_timeout_seconds", "read_timeout_seconds",
    "max_in_flight", "upload_concurrency", "poll_concurrency", "max_attempts",
    "task_deadline_seconds", "retention_seconds", "breaker_threshold", "breaker_probe_seconds",
    "quota_probe_seconds", "use_status_probe",
)  # fmt: skip
_BOOLEAN_SETTINGS = (
    "make_skew_correct", "make_binarization", "make_contrast_correction", "make_upsampling",
    "make_spell_check",
)  # fmt: skip
_INBOX_KEYS = (
    "name", "path", "mode", "language", *_BOOLEAN_SETTINGS, "rotate", "dsr_mode",
    "dsr_confidence", "result_types", "regions", "output_dir", "output_template", "error_dir",
    "on_success", "done_dir", "include", "exclude", "recursive", "watch",
    "polling_interval_seconds", "settle_seconds", "max_settle_seconds", "incomplete_after_seconds",
    "duplicates", "hooks",
)  # fmt: skip
_DEFAULTS_KEYS = tuple(k for k in _INBOX_KEYS if k not in ("name", "path"))
# Inbox names appear in logs, the state store, file names ({inbox}) and the CLI.
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
