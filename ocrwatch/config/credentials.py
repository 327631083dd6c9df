"""Find the Aspose client id and secret, refusing a secret file others can read; warn of trial mode.

Hazard guarded here rather than at run time: a secret file readable by others leaks the Aspose
client secret, so its mode must be 0600 or stricter (systemd's credentials directory is trusted
as is). The secret is held only in ``Credentials`` (no repr); only its source is kept beside it,
for ``describe`` to show where it came from, never its value.
"""

from __future__ import annotations

import stat
from collections.abc import Sequence
from pathlib import Path

from ocrwatch import policy
from ocrwatch.config.keys import ENV_CLIENT_ID, ENV_CLIENT_SECRET, SYSTEMD_CREDENTIAL
from ocrwatch.config.profiles import InboxConfig
from ocrwatch.config.reader import _Section
from ocrwatch.model import Credentials, Mode

SECRET_NOT_READ = "not read: this command never calls the service"


def _client_id_only(service: _Section) -> tuple[None, str | None]:
    """For commands that never call the service: no secret, but whether there is an account."""
    client_id = service.environ.get(ENV_CLIENT_ID) or service.text("client_id")
    service.path("client_secret_file")  # still checked to be a path, as when it is read
    return None, SECRET_NOT_READ if client_id else None


def _read_credentials(service: _Section) -> tuple[Credentials | None, str | None]:
    """Find the client id and secret; the secret's source wins in the order env, file, systemd."""
    environ = service.environ
    client_id = environ.get(ENV_CLIENT_ID) or service.text("client_id")  # env overrides
    secret: str | None = None
    source: str | None = None
    secret_file = service.path("client_secret_file")
    credentials_dir = environ.get("CREDENTIALS_DIRECTORY")
    if environ.get(ENV_CLIENT_SECRET):
        secret, source = environ[ENV_CLIENT_SECRET], f"env {ENV_CLIENT_SECRET}"
    elif secret_file is not None:
        source = f"file {secret_file}"
        secret = _read_secret(service, secret_file, key="client_secret_file", check_mode=True)
    elif credentials_dir and (Path(credentials_dir) / SYSTEMD_CREDENTIAL).exists():
        source = f"systemd credential {SYSTEMD_CREDENTIAL}"
        # systemd owns the credentials directory and its modes; no check needed there.
        path = Path(credentials_dir) / SYSTEMD_CREDENTIAL
        secret = _read_secret(service, path, key="(systemd credential)", check_mode=False)
    if client_id and source is None:
        service.report(
            "client_id",
            "a client id is set but no client secret: set service.client_secret_file, "
            f"{ENV_CLIENT_SECRET} or systemd LoadCredential={SYSTEMD_CREDENTIAL}:<file> "
            "(or remove the id to run in trial mode)",
        )
    elif source is not None and not client_id:
        service.report(
            "client_id",
            f"a client secret is set ({source}) but no client id: set service.client_id "
            f"or {ENV_CLIENT_ID}",
        )
    if client_id and secret:
        return Credentials(client_id=client_id, client_secret=secret), source
    return None, None


def _read_secret(service: _Section, path: Path, *, key: str, check_mode: bool) -> str | None:
    try:
        mode = path.stat().st_mode
        if check_mode and mode & 0o077:
            service.report(
                key,
                f"{path} can be read or changed by group or others "
                f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}",
            )
            return None
        secret = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        service.report(key, f"cannot read the client secret from {path}: {reason}")
        return None
    if not secret:
        service.report(key, f"{path} is empty")
        return None
    return secret


def _trial_warnings(inboxes: Sequence[InboxConfig]) -> list[str]:
    """Trial mode reaches RecognizeImageTrial only; say which files are bound to fail."""
    warnings = []
    for inbox in inboxes:
        if inbox.mode is not Mode.IMAGE:
            warnings.append(
                f"inbox {inbox.name}: mode {inbox.mode} needs credentials; trial mode "
                "(no credentials) can only use mode image — files will go to the error folder"
            )
        elif any(policy.glob_matches(p.rsplit("/", 1)[-1], "scan.pdf") for p in inbox.include):
            warnings.append(
                f"inbox {inbox.name}: PDFs need credentials (RecognizePdf has no trial); "
                "PDFs dropped here will go to the error folder"
            )
    return warnings
