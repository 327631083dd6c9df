"""The manual page ``ocrwatch(1)``, generated from the argparse parser so it never drifts.

Pure: ``render(parser)`` returns roff text for the ``man`` macros. ``docs/ocrwatch.1`` is
its output, kept in the repository so ``man ./docs/ocrwatch.1`` works from a checkout;
``tests/test_manpage.py`` fails when the file and the parser disagree, and says how to
regenerate it.

The sections around the generated ones (files, environment, exit status) are written here,
once; what each subcommand and option does comes from its argparse help text.
"""

from __future__ import annotations

import argparse

from ocrwatch.completion import subcommands

_FILES = (
    ("/etc/ocrwatch/config.yaml", "The configuration when neither --config nor "
     "$OCRWATCH_CONFIG names one. config.example.yaml documents every key."),
    ("/var/lib/ocrwatch/state.db", "The state file of the service on "
     "/etc/ocrwatch/config.yaml (systemd's StateDirectory=); /var/lib/ocrwatch/NAME/state.db "
     "for /etc/ocrwatch/NAME.yaml. Elsewhere $XDG_STATE_HOME/ocrwatch/state.db, unless the "
     "configuration's state.path says otherwise."),
)  # fmt: skip
_ENVIRONMENT = (
    ("OCRWATCH_CONFIG", "The configuration file, when --config is not given."),
    ("OCRWATCH_CLIENT_ID, OCRWATCH_CLIENT_SECRET", "Aspose credentials (see the README)."),
    ("OCRWATCH_USE_POLLING, OCRWATCH_POLLING_INTERVAL, OCRWATCH_RECURSIVE, "
     "OCRWATCH_IGNORE_PATTERNS, OCRWATCH_STABILITY_DELAY", "Override watch, "
     "polling_interval_seconds, recursive, exclude and settle_seconds for every inbox, over "
     "the file (meant for containers; ocrwatch check lists those in force)."),
    ("OCRWATCH_HEARTBEAT_FILE", "A file the daemon's control loop touches, for a "
     "container's health check."),
    ("STATE_DIRECTORY", "Set by systemd; the state file is state.db in it."),
    ("XDG_STATE_HOME", "Elsewhere, the state file is ocrwatch/state.db in it (default "
     "~/.local/state)."),
    ("NO_COLOR", "When set and not empty, the console log has no colours."),
    ("FORCE_COLOR", "When set and not empty, the console log is coloured even into a pipe."),
)  # fmt: skip
_EXIT_STATUS = (
    ("0", "Success."),
    ("1", "A file failed (once), a problem was found (doctor), or a retry was refused."),
    ("2", "The command line was wrong."),
    ("69", "The OCR service could not be reached."),
    ("70", "A bug: one log line (event crashed) says where."),
    ("74", "The state file is unusable."),
    ("75", "once: the account's plan or quota refuses calls; the files wait in the inbox."),
    ("78", "The configuration is invalid; each problem is listed with its key."),
    ("130", "Interrupted (SIGINT)."),
    ("141", "The reader of the output went away (a closed pipe)."),
)


def _escape(text: str) -> str:
    """Roff-safe text: backslashes and hyphens escaped, no line starts with a control dot."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line
                     for line in text.splitlines())  # fmt: skip


def _help(action: argparse.Action, parser: argparse.ArgumentParser) -> str:
    if not action.help or action.help == argparse.SUPPRESS:
        return ""
    formatter = parser._get_formatter()
    return formatter._expand_help(action)


def _synopsis(name: str, parser: argparse.ArgumentParser) -> str:
    usage = parser.format_usage().removeprefix("usage: ").strip()
    return " ".join(usage.split())  # one line: man fills it


def _options(parser: argparse.ArgumentParser) -> list[str]:
    lines: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
            continue
        if action.option_strings:
            metavar = ""
            if action.nargs != 0:
                metavar = " " + (
                    action.metavar
                    if isinstance(action.metavar, str)
                    else "{" + ",".join(str(c) for c in action.choices or ()) + "}"
                    if action.choices
                    else action.dest.upper()
                )
            label = ", ".join(f"\\fB{_escape(o)}\\fR" for o in action.option_strings)
            label += f"\\fI{_escape(metavar)}\\fR"
        else:
            label = f"\\fI{_escape(str(action.metavar or action.dest))}\\fR"
        lines += [".TP", label, _escape(_help(action, parser))]
    return lines


def render(parser: argparse.ArgumentParser) -> str:
    """The whole page, in roff."""
    prog = parser.prog
    lines = [
        f'.TH {prog.upper()} 1 "" "{prog}" "User Commands"',
        ".SH NAME",
        f"{prog} \\- {_escape(parser.description or '')}",
        ".SH SYNOPSIS",
        f"\\fB{prog}\\fR [\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]",
        ".SH DESCRIPTION",
        _escape(
            f"{prog} watches inbox folders; each file dropped there is recognised by the "
            "Aspose.OCR Cloud API or the embedded local engine, and a text sidecar (and "
            "optionally a searchable PDF, hOCR or JSON) is written beside it or into an "
            "output folder. A file that cannot be recognised goes to the error folder with a "
            "reason file."
        ),
        ".SH OPTIONS",
        *_options(parser),
        ".SH COMMANDS",
    ]
    for name, sub in subcommands(parser).items():
        lines += [".SS " + _escape(name), _escape(sub.description or ""), ".PP"]
        lines += [".nf", _escape(_synopsis(name, sub)), ".fi"]
        options = _options(sub)
        if options:
            lines += [".RS", *options, ".RE"]
    for title, entries in (("FILES", _FILES), ("ENVIRONMENT", _ENVIRONMENT),
                           ("EXIT STATUS", _EXIT_STATUS)):  # fmt: skip
        lines.append(f".SH {title}")
        for term, text in entries:
            lines += [".TP", f"\\fB{_escape(term)}\\fR", _escape(text)]
    lines += [
        ".SH SEE ALSO",
        "\\fBsystemctl\\fR(1), \\fBjournalctl\\fR(1); README.md, config.example.yaml and "
        "docs/ in the source distribution.",
    ]
    return "\n".join(lines) + "\n"
