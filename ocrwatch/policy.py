"""Pure decisions about paths: is this a candidate, where do its outputs go, how to watch a folder.

Nothing here touches the file system: functions take names, sizes and times and return
values, so every rule is testable with a table. The shells (``watcher``, ``probe``,
``outputs``, ``service``) do the I/O and act on these answers. Whether a file has settled
is decided in ``ocrwatch.settling``; those names are re-exported here (``policy.observe``,
``policy.settle_verdict``, ``policy.SettleState``, ``policy.SettleVerdict``).

Names are matched case-insensitively on their NFC form, because macOS clients write NFD
names to SMB shares and scanners disagree about case. Names may carry surrogate escapes
(``\\udce4``) for bytes that are not UTF-8; every function here accepts them, and byte
lengths are measured the way ``os.fsencode`` measures them (UTF-8 with surrogateescape).

Output names are rendered from a template and checked so that no template and no source
name can write outside the target folder: a rendered name is one path component or a
``ValueError``.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath

from wcmatch import glob as wcglob

from ocrwatch.model import SIDECAR_EXTENSIONS, ResultFormat, WatchMode
from ocrwatch.settling import SettleState, SettleVerdict, observe, settle_verdict

__all__ = [  # the settling names are re-exported from ocrwatch.settling
    "BUILTIN_IGNORES", "MAX_NAME_BYTES", "NETWORK_FILESYSTEMS", "TEMPLATE_FIELDS", "SettleState",
    "SettleVerdict", "Verdict", "builtin_ignore", "candidate_verdict", "choose_watch_mode",
    "glob_matches", "glob_problem",
    "is_network_filesystem", "is_within", "mirrored_path", "observe", "output_paths",
    "output_source", "reason_file_name", "settle_verdict",
]  # fmt: skip

# Checked against every path component, in order; the first match names the rule. ".*"
# (hidden) comes last so that ".DS_Store" reports its own, more telling, rule.
BUILTIN_IGNORES: tuple[str, ...] = (
    "*.ocrwatch-*.tmp",  # our own atomic-write temporaries
    "*.error.json",  # our own reason files
    ".syncthing.*.tmp",  # Syncthing's partial downloads, before the wider "*.tmp"
    "*.part", "*.partial", "*.filepart", "*.crdownload", "*.tmp", "*.temp", "*.download",
    "~$*", "*.pd~", ".~lock.*#",  # Office owner files, scanner temporaries, LibreOffice locks
    ".DS_Store", "._*", "Thumbs.db", "desktop.ini",
    "@eaDir", ".@__thumb", "#recycle", "$RECYCLE.BIN",  # Synology, QNAP, SMB recycle bins
    ".stfolder", ".stversions",
    ".*",
)  # fmt: skip
_HIDDEN = ".*"
_OWN_FILES = frozenset(BUILTIN_IGNORES[:2])  # our temporaries and reason files

MAX_NAME_BYTES = 255  # NAME_MAX on Linux file systems and on SMB
_HASH_HEX_CHARS = 8
TEMPLATE_FIELDS: tuple[str, ...] = ("name", "stem", "suffix", "ext", "inbox")

# File systems whose changes made by other machines never reach inotify.
NETWORK_FILESYSTEMS: frozenset[str] = frozenset({
    "nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "fuse", "9p", "virtiofs", "afs",
    "ceph", "glusterfs", "davfs", "ncpfs", "lustre", "gpfs", "beegfs", "ocfs2", "gfs2",
    "drvfs", "vboxsf", "vmhgfs", "prl_fs", "coda", "orangefs",
})  # fmt: skip


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _fold(text: str) -> str:
    """The form names are compared in: NFC, case-folded (NFC again: folding can undo it)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())


def _name_bytes(name: str) -> int:
    return len(name.encode("utf-8", "surrogateescape"))


# wcmatch's glob dialect, the one pathlib and gitignore users know: "**" is zero or more
# folders ("**/*.pdf" matches "a.pdf", "scans/**/*.pdf" matches "scans/a.pdf"), "*" and "?"
# stay within one name, "{pdf,tif}" expands, "[!...]" negates a set. A leading "." needs no
# explicit dot (hidden names are ignored by a built-in rule anyway). Case is folded by us.
_GLOB_FLAGS = wcglob.GLOBSTAR | wcglob.DOTGLOB | wcglob.BRACE | wcglob.CASE


@functools.lru_cache(maxsize=512)
def _glob(pattern: str) -> re.Pattern[str]:
    """Compile a glob (folded like the names it meets) into one regular expression."""
    regexes, _ = wcglob.translate(_fold(pattern), flags=_GLOB_FLAGS)
    return re.compile("|".join(f"(?:{r})" for r in regexes))


def glob_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable glob (for config validation), or None."""
    try:
        _glob(pattern)
    except (ValueError, re.error) as error:  # wcmatch's pattern limit is a ValueError
        return str(error)
    return None


def _matches(pattern: str, relpath: str, name: str) -> bool:
    """Patterns with "/" match the whole relative path, others the file name."""
    return _glob(pattern).fullmatch(relpath if "/" in pattern else name) is not None


def glob_matches(pattern: str, relpath: str) -> bool:
    """Whether an include/exclude ``pattern`` takes the inbox-relative path ``relpath``."""
    return _matches(pattern, _fold(relpath), _fold(relpath.rsplit("/", 1)[-1]))


def builtin_ignore(name: str) -> str | None:
    """The built-in pattern that ignores one path component, or None."""
    folded = _fold(name)
    for pattern in BUILTIN_IGNORES:
        if _glob(pattern).fullmatch(folded):
            return pattern
    return None


@dataclass(frozen=True, slots=True)
class Verdict:
    accepted: bool
    rule: str | None  # the rule that excluded the path, for logs and `ocrwatch explain`
    own: bool = False  # ignored as one of ocrwatch's own files: not worth a log line

    @property
    def is_notable(self) -> bool:
        """Ignored, and not as our own output, temporary or reason file: worth telling."""
        return not self.accepted and not self.own


def _builtin_rule(relpath: PurePath) -> str | None:
    parts = relpath.parts
    if not parts or relpath.is_absolute() or any(p in ("", ".", "..") for p in parts):
        return "not a path inside the inbox"
    for index, part in enumerate(parts):
        pattern = builtin_ignore(part)
        if pattern is None:
            continue
        is_file = index == len(parts) - 1
        if pattern == _HIDDEN:
            return "hidden file" if is_file else f"inside hidden folder '{part}'"
        if is_file:
            return f"built-in ignore '{pattern}'"
        return f"inside ignored folder '{part}' (built-in ignore '{pattern}')"
    return None


def _pattern_rule(
    relpath: PurePath, *, include: Sequence[str], exclude: Sequence[str]
) -> str | None:
    folded_path = _fold("/".join(relpath.parts))
    folded_name = _fold(relpath.name)
    for pattern in exclude:
        if _matches(pattern, folded_path, folded_name):
            return f"exclude pattern '{pattern}'"
    if include and not any(_matches(p, folded_path, folded_name) for p in include):
        return "matches none of the include patterns"
    return None


def _is_acceptable(relpath: PurePath, *, include: Sequence[str], exclude: Sequence[str]) -> bool:
    return _builtin_rule(relpath) is None and _pattern_rule(relpath, include=include,
                                                            exclude=exclude) is None  # fmt: skip


def candidate_verdict(
    relpath: PurePath,
    *,
    include: Sequence[str],
    exclude: Sequence[str],
    output_template: str,
    outputs_inside_inbox: bool,
    inbox_name: str | None = None,
) -> Verdict:
    """Whether a file at ``relpath`` (relative to the inbox root) should be recognised.

    An empty ``include`` accepts every name. With ``inbox_name`` None, ``{inbox}`` in the
    template matches any text when recognising our own outputs.
    """
    rule = _builtin_rule(relpath)
    if rule is not None:
        return Verdict(accepted=False, rule=rule, own=builtin_ignore(relpath.name) in _OWN_FILES)
    if outputs_inside_inbox and (
        output_source(
            relpath,
            include=include,
            exclude=exclude,
            output_template=output_template,
            inbox_name=inbox_name,
        )
        is not None
    ):
        rule = f"ocrwatch's own output (output_template '{output_template}')"
        return Verdict(accepted=False, rule=rule, own=True)
    rule = _pattern_rule(relpath, include=include, exclude=exclude)
    return Verdict(accepted=rule is None, rule=rule)


# ---- output templates -------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _template_parts(template: str) -> tuple[tuple[str, bool], ...]:
    """Split a template into (text, is_field) pieces; "{{" and "}}" are literal braces."""
    parts: list[tuple[str, bool]] = []
    literal: list[str] = []
    i = 0
    while i < len(template):
        pair = template[i : i + 2]
        if pair in ("{{", "}}"):
            literal.append(pair[0])
            i += 2
            continue
        if template[i] == "}":
            raise ValueError(f"output template {template!r}: unbalanced brace")
        if template[i] != "{":
            literal.append(template[i])
            i += 1
            continue
        end = template.find("}", i)
        field = template[i + 1 : end]
        if end == -1 or field not in TEMPLATE_FIELDS:
            allowed = " ".join(f"{{{f}}}" for f in TEMPLATE_FIELDS)
            raise ValueError(f"output template {template!r}: fields are {allowed}")
        parts += [("".join(literal), False), (field, True)]
        literal = []
        i = end + 1
    return (*parts, ("".join(literal), False))


@functools.lru_cache(maxsize=64)
def _output_regex(template: str, inbox_name: str | None, *, lazy: bool) -> re.Pattern[str]:
    seen: set[str] = set()
    out: list[str] = []
    extensions = "|".join(re.escape(e) for e in SIDECAR_EXTENSIONS.values())
    free = ".+?" if lazy else ".+"
    for text, is_field in _template_parts(template):
        if not is_field:
            out.append(re.escape(_nfc(text)))
        elif text in seen:
            out.append(f"(?P={text})")
        else:
            seen.add(text)
            body = {
                "ext": extensions,
                "suffix": r"(?:\.[^.]+)?",
                "inbox": free if inbox_name is None else re.escape(_nfc(inbox_name)),
            }.get(text, free)
            out.append(f"(?P<{text}>{body})")
    # IGNORECASE rather than casefold() keeps the groups in the file's own spelling.
    return re.compile("".join(out), re.DOTALL | re.IGNORECASE)


def output_source(
    relpath: PurePath,
    *,
    include: Sequence[str],
    exclude: Sequence[str],
    output_template: str,
    inbox_name: str | None = None,
) -> PurePath | None:
    """The source ``relpath`` would be an output of, if that source is itself acceptable.

    Only outputs written beside their source are recognised. The answer comes from names
    alone: a user's file literally called ``photo.jpg.pdf`` looks like our output of
    ``photo.jpg``; the caller may check that the source exists. The name returned is the
    file's own spelling in NFC form. Outputs of a source without a suffix are not recognised.
    """
    if not relpath.parts:
        return None
    name = _nfc(relpath.name)
    for lazy in (False, True):  # two bindings cover "a.txt.txt"-style ambiguity
        match = _output_regex(output_template, inbox_name, lazy=lazy).fullmatch(name)
        if match is None:
            continue
        groups = match.groupdict()
        if "name" in groups:
            source_name = groups["name"]
        elif "stem" in groups and "suffix" in groups:
            source_name = groups["stem"] + groups["suffix"]
        else:
            return None  # the template drops the suffix: the source cannot be told by name
        # A source without a suffix is not trusted: "report.pdf" would be the Pdf output
        # of "report", and a user's PDF must not vanish on a guess.
        if source_name in ("", ".", "..") or not PurePath(source_name).suffix:
            continue
        source = relpath.with_name(source_name)
        if _is_acceptable(source, include=include, exclude=exclude):
            return source
    return None


def _render(template: str, values: Mapping[str, str]) -> str:
    return "".join(values[text] if f else text for text, f in _template_parts(template))


def _render_fitting(template: str, values: dict[str, str]) -> str:
    """Render; if the name is too long, cut the stem and mark it with a hash of the original."""
    rendered = _render(template, values)
    if _name_bytes(rendered) <= MAX_NAME_BYTES:
        return rendered
    for stem, suffix in ((values["stem"], values["suffix"]), (values["name"], "")):
        digest = hashlib.sha256(stem.encode("utf-8", "surrogateescape")).hexdigest()
        mark = "~" + digest[:_HASH_HEX_CHARS]
        for keep in range(len(stem), -1, -1):
            short = stem[:keep] + mark
            candidate = _render(template, {**values, "stem": short, "name": short + suffix})
            if _name_bytes(candidate) <= MAX_NAME_BYTES:
                return candidate
    raise ValueError(f"output name from template {template!r} is longer than "
                     f"{MAX_NAME_BYTES} bytes even when shortened")  # fmt: skip


def _check_component(name: str) -> str:
    if name in ("", ".", "..") or "/" in name or "\x00" in name:
        raise ValueError(f"rendered name {name!r} is not a single file name")
    return name


def _source_values(name: str) -> dict[str, str]:
    path = PurePath(name)
    return {"name": name, "stem": path.stem, "suffix": path.suffix}


def output_paths(
    source: PurePath,
    *,
    inbox_root: PurePath,
    output_dir: PurePath | None,
    template: str,
    formats: Sequence[ResultFormat],
    inbox_name: str,
) -> dict[ResultFormat, PurePath]:
    """Where each sidecar of ``source`` goes: beside it, or mirrored under ``output_dir``."""
    if not is_within(source, inbox_root) or source == inbox_root:
        raise ValueError(f"{source} is not inside the inbox {inbox_root}")
    parent = source.parent
    target_dir = parent if output_dir is None else output_dir / parent.relative_to(inbox_root)
    paths: dict[ResultFormat, PurePath] = {}
    for result_format in formats:
        if result_format not in SIDECAR_EXTENSIONS:
            raise ValueError(f"{result_format} results are not written as sidecars")
        values = {**_source_values(source.name), "inbox": inbox_name,
                  "ext": SIDECAR_EXTENSIONS[result_format]}  # fmt: skip
        path = target_dir / _check_component(_render_fitting(template, values))
        if path == source:
            raise ValueError(f"template {template!r} would overwrite the source {source.name!r}")
        if path in paths.values():
            raise ValueError(f"template {template!r} gives two formats the same name")
        paths[result_format] = path
    return paths


def mirrored_path(source: PurePath, *, inbox_root: PurePath, target_root: PurePath) -> PurePath:
    """``source``'s place under ``target_root`` (the error or done folder), subfolders kept."""
    if not is_within(source, inbox_root) or source == inbox_root:
        raise ValueError(f"{source} is not inside the inbox {inbox_root}")
    return target_root / source.relative_to(inbox_root)


def reason_file_name(name: str) -> str:
    """``<name>.error.json``, shortened (keeping the source's suffix) to fit in 255 bytes."""
    values = {**_source_values(name), "inbox": "", "ext": ""}
    return _check_component(_render_fitting("{name}.error.json", values))


def is_within(path: PurePath, root: PurePath) -> bool:
    """Lexical containment (``root`` itself counts); pass resolved paths for real containment."""
    depth = len(root.parts)
    return path.parts[:depth] == root.parts and ".." not in path.parts[depth:]


# ---- watch mode -------------------------------------------------------------------------


def is_network_filesystem(fstype: str) -> bool:
    return fstype in NETWORK_FILESYSTEMS or fstype.startswith("fuse.")


def choose_watch_mode(requested: WatchMode, fstype: str | None) -> tuple[WatchMode, str]:
    """Resolve ``auto``: network file systems are polled, everything else gets events."""
    if requested is WatchMode.EVENTS:
        return WatchMode.EVENTS, "events requested in the configuration"
    if requested is WatchMode.POLLING:
        return WatchMode.POLLING, "polling requested in the configuration"
    if fstype is None:
        return WatchMode.EVENTS, "file system type unknown; assuming it delivers change events"
    if is_network_filesystem(fstype):
        return WatchMode.POLLING, f"{fstype} does not deliver change events"
    return WatchMode.EVENTS, f"{fstype} delivers change events"
