"""The command line: argparse subcommands; maps exceptions to exit codes in one place.

This is the only module that prints. ``main(argv)`` returns an exit code so tests can call it
in-process; ``entry_point`` is the console script.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from ocrwatch import __version__, allocator, doctor, logsetup
from ocrwatch.aspose import OcrClient, Timeouts
from ocrwatch.config import Config, describe, load_config
from ocrwatch.emulator import cli as emulator_cli
from ocrwatch.engine import missing_modules, supported_languages
from ocrwatch.errors import ConfigError, ExitCode, OcrwatchError
from ocrwatch.explain import explain
from ocrwatch.model import JobState
from ocrwatch.progress import Progress, ProgressView
from ocrwatch.requeue import failed_files, requeue
from ocrwatch.service import Service
from ocrwatch.store import Store
from ocrwatch.systemd import SystemdNotifier, journal_writer, request_reload

Handler = Callable[[argparse.Namespace], int]
DEFAULT_CONFIG = Path("config.yaml")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ocrwatch", description="Watch folders and turn the files dropped there into text."
    )
    parser.add_argument("--version", action="version", version=f"ocrwatch {__version__}")
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="overrides logging.level of the config",
    )
    parser.add_argument(
        "--log-format",
        choices=["auto", "console", "json", "journal"],
        help="overrides logging.format",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def with_config(name: str, help_text: str, handler: Handler) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "-c", "--config", type=Path, default=DEFAULT_CONFIG, help="the YAML configuration"
        )
        sub.set_defaults(handler=handler)
        return sub

    with_config("run", "watch the inboxes and process files until stopped", _run)
    with_config("once", "process what is in the inboxes now, wait for it, then exit", _once)
    with_config("check", "validate the configuration and print the resolved profiles", _check)
    status = with_config(
        "status", "show per-inbox counts, oldest waiting file, last errors", _status
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    retry = with_config("retry", "move files from the error folders back to their inbox", _retry)
    retry.add_argument("paths", nargs="*", type=Path, help="files in an error folder")
    retry.add_argument("--all", action="store_true", help="every file in every error folder")
    checkup = with_config(
        "doctor",
        "check folders, permissions, inotify limits, disk space and the service; "
        "exit 1 on any problem",
        _doctor,
    )
    checkup.add_argument(
        "--min-free-mb",
        type=int,
        default=doctor.DEFAULT_MIN_FREE_MB,
        help="free disk space below this is a problem (default %(default)s)",
    )
    checkup.add_argument("--offline", action="store_true", help="skip the service checks")
    checkup.add_argument("--json", action="store_true", help="machine-readable output")
    why = with_config(
        "explain",
        "say which inbox and rule apply to a file, its settle status and history",
        _explain,
    )
    why.add_argument("path", type=Path, help="a file in an inbox (or in an error folder)")
    why.add_argument("--json", action="store_true", help="machine-readable output")

    reload = commands.add_parser(
        "reload",
        help="ExecReload= of the systemd unit: SIGHUP the daemon, exit 1 if it refuses the config",
        description="Send SIGHUP to the daemon (--pid, default $MAINPID) and wait until it has "
        "taken or refused its configuration; exit 0 if taken, 1 if refused. Needs the unit's "
        "RuntimeDirectory=, where the daemon writes each reload's outcome.",
    )
    reload.add_argument("--pid", type=int, help="the daemon's process id (default $MAINPID)")
    reload.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (60)")
    reload.set_defaults(handler=_reload)

    serve = commands.add_parser(
        "serve",
        help="run the local Aspose.OCR Cloud v5 compatible server",
        description=emulator_cli.DESCRIPTION,
    )
    emulator_cli.add_arguments(serve)
    serve.set_defaults(handler=_serve)
    return parser


# ------------------------------------------------------------------------------ commands


def _reload(args: argparse.Namespace) -> int:
    pid = args.pid or int(os.environ.get("MAINPID", "0") or 0)
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if pid <= 0 or not runtime:
        print("ocrwatch reload: needs $MAINPID and $RUNTIME_DIRECTORY (run it as ExecReload=)",
              file=sys.stderr)  # fmt: skip
        return int(ExitCode.USAGE)
    try:
        outcome = request_reload(pid, Path(runtime), timeout_seconds=args.timeout)
    except (OSError, TimeoutError) as exc:
        print(f"ocrwatch reload: {exc}", file=sys.stderr)
        return 1
    if not outcome.ok:
        print("ocrwatch reload: the configuration was refused; the previous one stays in force:\n  "
              + "\n  ".join(outcome.problems), file=sys.stderr)  # fmt: skip
        return 1
    print("ocrwatch reload: configuration taken")
    return 0


def _serve(args: argparse.Namespace) -> int:
    return int(emulator_cli.run(args, out=sys.stdout))


def _load(args: argparse.Namespace, *, quiet: bool = False, secrets: bool = True) -> Config:
    """Load the config and set up logging; ``quiet``: warnings and errors only, unless asked.

    ``secrets=False`` for commands that never call the service: no client secret needed.
    """
    config = load_config(args.config, secrets=secrets)
    level = args.log_level or ("warning" if quiet else config.log_level)
    fmt = logsetup.log_format(args.log_format or config.log_format)
    logsetup.configure(level, fmt, journal_send=journal_writer())
    return config


def _check(args: argparse.Namespace) -> int:
    config = _load(args)
    if config.service.is_embedded:
        _check_embedded(config)
    json.dump(describe(config), sys.stdout, indent=2, ensure_ascii=False, default=str)
    print()
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"configuration OK: {len(config.inboxes)} inbox(es)", file=sys.stderr)
    return int(ExitCode.OK)


def _run(args: argparse.Namespace) -> int:
    config = _load(args)
    allocator.keep_large_blocks_mapped()  # before the daemon's heap churn starts
    with _service(config) as service:
        service.run()
    return int(ExitCode.OK)


def _once(args: argparse.Namespace) -> int:
    # On a terminal the progress bar replaces the info-level log lines, which would break it.
    is_tty = sys.stderr.isatty()
    config = _load(args, quiet=is_tty)
    view = ProgressView(is_tty=is_tty)
    last: list[Progress] = []

    def show(progress: Progress) -> None:
        last[:] = [progress]
        text = view.update(progress, now=time.monotonic())
        if text:
            sys.stderr.write(text)
            sys.stderr.flush()

    with _service(config, watch=False) as service:
        summary = service.run(until_idle=True, on_progress=show)
    if last:
        sys.stderr.write(view.finish(last[0]))
    print(f"{summary.done} done, {summary.failed} failed", file=sys.stderr)
    if service.stopping:
        return int(ExitCode.INTERRUPTED)
    return int(ExitCode.FAILURE if summary.failed else ExitCode.OK)


@contextmanager
def _api_client(config: Config) -> Iterator[OcrClient]:
    """The API client: to Aspose Cloud, or to the embedded server with the local engine."""
    service_config = config.service
    with contextlib.ExitStack() as stack:
        base_url, credentials = service_config.url, service_config.credentials
        if service_config.is_embedded:
            _check_embedded(config)
            # The server and the engine's pool: loaded only for the embedded service.
            from ocrwatch.embedded import EmbeddedService  # noqa: PLC0415

            embedded = stack.enter_context(EmbeddedService())
            base_url, credentials = embedded.base_url, embedded.credentials
        yield stack.enter_context(
            OcrClient(
                base_url,
                credentials=credentials,
                timeouts=Timeouts(
                    connect_seconds=service_config.connect_timeout_seconds,
                    read_seconds=service_config.read_timeout_seconds,
                ),
                pool_size=service_config.upload_concurrency + service_config.poll_concurrency,
            )
        )


def _check_embedded(config: Config) -> None:
    """The local engine must be installed and read every inbox's language."""
    missing = missing_modules()
    if missing:
        raise ConfigError(
            "service.url is embedded, but the local OCR engine is not installed (missing: "
            f"{', '.join(missing)}): pip install 'ocrwatch[engine]'"
        )
    readable = supported_languages()
    problems = [
        f"inboxes ({inbox.name}).language: the local engine cannot read "
        f"{inbox.settings.language}; it reads {', '.join(sorted(readable))}"
        for inbox in config.inboxes
        if inbox.settings.language not in readable
    ]
    if problems:
        raise ConfigError(problems)


@contextmanager
def _service(config: Config, *, watch: bool = True) -> Iterator[Service]:
    with Store.open(config.state_path) as store, _api_client(config) as client:
        service = Service(
            config,
            api=client,
            store=store,
            notifier=SystemdNotifier(),
            watch=watch,
            validate=_check_embedded if config.service.is_embedded else None,
        )

        def stop(signum: int, frame: object) -> None:
            service.request_stop()  # only sets a flag and wakes the loop

        def reload(signum: int, frame: object) -> None:
            service.request_reload()  # only sets a flag and wakes the loop

        handlers = {signal.SIGTERM: stop, signal.SIGINT: stop, signal.SIGHUP: reload}
        previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
        try:
            yield service
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _status(args: argparse.Namespace) -> int:
    config = _load(args, secrets=False)
    if not config.state_path.exists():
        print(f"no state file yet at {config.state_path}: the daemon has not run", file=sys.stderr)
        return int(ExitCode.OK)
    now = time.time()
    report: list[dict[str, Any]] = []
    with Store.open(config.state_path, readonly=True) as store:
        for inbox in config.inboxes:
            counts = store.count_by_state(inbox=inbox.name)
            oldest = store.oldest_waiting(inbox=inbox.name)
            failures = store.recent_failures(inbox=inbox.name, limit=5)
            report.append(
                {
                    "inbox": inbox.name,
                    "path": str(inbox.path),
                    "counts": {state.value: counts.get(state, 0) for state in JobState},
                    "oldest_waiting": None
                    if oldest is None
                    else {
                        "path": str(oldest.path),
                        "state": oldest.state.value,
                        "age_seconds": round(now - oldest.first_seen_at, 1),
                    },
                    "in_error_folder": sum(1 for i, _ in failed_files(config) if i is inbox),
                    "last_errors": [
                        {
                            "path": str(job.path),
                            "class": job.error_class.value if job.error_class else None,
                            "message": job.last_error,
                            "at": job.updated_at,
                        }
                        for job in failures
                    ],
                }
            )
    if args.json:
        json.dump(report, sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        _print_status(report, sys.stdout)
    return int(ExitCode.OK)


def _print_status(report: list[dict[str, Any]], out: TextIO) -> None:
    for entry in report:
        counts = entry["counts"]
        shown = ", ".join(f"{n} {state}" for state, n in counts.items() if n) or "nothing yet"
        print(f"{entry['inbox']} ({entry['path']}): {shown}", file=out)
        oldest = entry["oldest_waiting"]
        if isinstance(oldest, dict):
            print(
                f"  oldest waiting: {oldest['path']} ({oldest['state']}, "
                f"{oldest['age_seconds']} s)",
                file=out,
            )
        print(f"  in the error folder: {entry['in_error_folder']}", file=out)
        for error in entry["last_errors"]:
            print(f"  error: {error['path']}: [{error['class']}] {error['message']}", file=out)


def _doctor(args: argparse.Namespace) -> int:
    config = _load(args, quiet=True)
    findings = doctor.examine(
        config, min_free_bytes=max(0, args.min_free_mb) << 20, check_service=not args.offline
    )
    problems = [f for f in findings if f.level is doctor.Level.PROBLEM]
    warnings = [f for f in findings if f.level is doctor.Level.WARNING]
    if args.json:
        json.dump(
            [{"subject": f.subject, "level": f.level.value, "text": f.text, "fix": f.fix}
             for f in findings],
            sys.stdout, indent=2, ensure_ascii=False,
        )  # fmt: skip
        print()
    else:
        for finding in findings:
            label = (
                finding.level.value.upper()
                if finding.level is doctor.Level.PROBLEM
                else (finding.level.value)
            )
            print(f"{label:<8} {finding.subject}: {finding.text}")
            if finding.fix and finding.level in (doctor.Level.PROBLEM, doctor.Level.WARNING):
                print(f"{'':<8} fix: {finding.fix}")
        print(f"{len(problems)} problem(s), {len(warnings)} warning(s)")
    return int(ExitCode.FAILURE if problems else ExitCode.OK)


def _explain(args: argparse.Namespace) -> int:
    config = _load(args, quiet=True, secrets=False)
    report = explain(config, args.path)
    if args.json:
        json.dump(
            {"path": report.path, "verdict": report.verdict, "facts": dict(report.facts),
             "history": report.history},
            sys.stdout, indent=2, ensure_ascii=False,
        )  # fmt: skip
        print()
        return int(ExitCode.OK)
    print(report.path)
    print(f"  verdict: {report.verdict}")
    for topic, text in report.facts:
        print(f"  {topic}: {text}")
    for job in report.history:
        error = f" [{job['error_class']}] {job['last_error']}" if job["error_class"] else ""
        task = f", task {job['task_id']}" if job["task_id"] else ""
        print(
            f"  job {job['job_id']}: {job['state']} (seen {job['first_seen']}, updated "
            f"{job['updated']}, {job['attempts']} attempt(s){task}){error}"
        )
    return int(ExitCode.OK)


def _retry(args: argparse.Namespace) -> int:
    if not args.paths and not args.all:
        raise ConfigError("retry: name files from an error folder, or use --all")
    config = _load(args, secrets=False)
    results = requeue(config, None if args.all else args.paths)
    failed = 0
    for item in results:
        if item.target is not None:
            print(f"requeued {item.source} -> {item.target}")
        else:
            failed += 1
            print(f"not requeued {item.source}: {item.problem}", file=sys.stderr)
    if not results:
        print("nothing in the error folders", file=sys.stderr)
    return int(ExitCode.FAILURE if failed else ExitCode.OK)


# ------------------------------------------------------------------------------ entry


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    fmt = logsetup.log_format(args.log_format or "auto")
    logsetup.configure(args.log_level or "info", fmt, journal_send=journal_writer())
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print("ocrwatch: configuration error:\n  " + "\n  ".join(exc.problems), file=sys.stderr)
        return int(exc.exit_code)
    except OcrwatchError as exc:
        print(f"ocrwatch: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)


def entry_point() -> None:
    raise SystemExit(main())
