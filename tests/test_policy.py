"""Table-driven tests of the pure path, settling and watch-mode decisions."""

from __future__ import annotations

from pathlib import PurePath

import pytest

from ocrwatch import policy
from ocrwatch.model import ResultFormat, WatchMode
from ocrwatch.policy import SettleState

IMAGES = ("*.png", "*.jpg", "*.jpeg", "*.tif", "*.tiff", "*.pdf")


@pytest.mark.parametrize(
    ("relpath", "rule"),
    [
        ("scan.png", None),
        ("SCAN.PNG", None),  # case-insensitive
        ("sub/dir/scan.jpg", None),
        ("Rechnung-\u00e4.pdf", None),
        ("Rechnung-a\u0308.pdf", None),  # NFD from a Mac
        ("bad-\udce4-name.png", None),  # undecodable byte, surrogate-escaped
        ("line\nbreak.png", None),
        ("report.pdf", None),  # a PDF is not our output of "report"
        ("scan.png.part", "built-in ignore '*.part'"),
        ("scan.PDF.filepart", "built-in ignore '*.filepart'"),
        ("scan.pdf.crdownload", "built-in ignore '*.crdownload'"),
        ("scan.pd~", "built-in ignore '*.pd~'"),
        ("~$report.pdf", "built-in ignore '~$*'"),
        (".~lock.report.pdf#", "built-in ignore '.~lock.*#'"),
        ("Thumbs.db", "built-in ignore 'Thumbs.db'"),
        ("thumbs.DB", "built-in ignore 'Thumbs.db'"),
        (".DS_Store", "built-in ignore '.DS_Store'"),
        ("._scan.png", "built-in ignore '._*'"),
        ("scan.png.ocrwatch-1a2b.tmp", "built-in ignore '*.ocrwatch-*.tmp'"),
        ("scan.png.error.json", "built-in ignore '*.error.json'"),
        (".syncthing.scan.png.tmp", "built-in ignore '.syncthing.*.tmp'"),
        (".hidden.png", "hidden file"),
        ("a/.git/scan.png", "inside hidden folder '.git'"),
        ("@eaDir/scan.png/SYNOFILE_THUMB_M.jpg",
         "inside ignored folder '@eaDir' (built-in ignore '@eaDir')"),
        ("#recycle/scan.png", "inside ignored folder '#recycle' (built-in ignore '#recycle')"),
        ("$RECYCLE.BIN/scan.png",
         "inside ignored folder '$RECYCLE.BIN' (built-in ignore '$RECYCLE.BIN')"),
        (".@__thumb/scan.png",
         "inside ignored folder '.@__thumb' (built-in ignore '.@__thumb')"),
        ("scan.bak.png", None),
        ("notes.docx", "matches none of the include patterns"),
        ("scan.bak", "exclude pattern '*.bak'"),
        ("drafts/x/scan.png", "exclude pattern 'drafts/**'"),
        ("scan.png.txt", "ocrwatch's own output (output_template '{name}.{ext}')"),
        ("scan.png.pdf", "ocrwatch's own output (output_template '{name}.{ext}')"),
        ("Scan.PNG.Hocr", "ocrwatch's own output (output_template '{name}.{ext}')"),
        ("sub/scan.jpg.json", "ocrwatch's own output (output_template '{name}.{ext}')"),
        # the output of an output:
        ("scan.png.pdf.txt", "ocrwatch's own output (output_template '{name}.{ext}')"),
        ("notes.docx.txt", "matches none of the include patterns"),  # source not acceptable
        ("scan.bak.txt", "matches none of the include patterns"),
        ("", "not a path inside the inbox"),
        ("../escape.png", "not a path inside the inbox"),
    ],
)  # fmt: skip
def test_candidate_verdict(relpath: str, rule: str | None) -> None:
    verdict = policy.candidate_verdict(
        PurePath(relpath),
        include=(*IMAGES, "*.bak"),
        exclude=("*.bak", "drafts/**"),
        output_template="{name}.{ext}",
        outputs_inside_inbox=True,
    )
    assert (verdict.accepted, verdict.rule) == (rule is None, rule)
    # Our own temporaries and reason files are ignored without a log line; the rest get one.
    own = ("*.ocrwatch-", "*.error.json", "ocrwatch's own output")
    assert verdict.is_notable == (rule is not None and not any(o in rule for o in own))


@pytest.mark.parametrize(
    ("relpath", "template", "inbox_name", "inside", "rule"),
    [
        ("scan.png.pdf", "{name}.{ext}", None, False, None),  # outputs elsewhere: a source
        ("scan_ocr.txt", "{stem}_ocr.{ext}", None, True, "matches none of the include patterns"),
        ("scan.png-ocr.pdf", "{stem}{suffix}-ocr.{ext}", None, True, "ocrwatch's own output"),
        ("scans-scan.png.pdf", "{inbox}-{name}.{ext}", "scans", True, "ocrwatch's own output"),
        ("other-scan.png.pdf", "{inbox}-{name}.{ext}", "scans", True, None),
        ("other-scan.png.pdf", "{inbox}-{name}.{ext}", None, True, "ocrwatch's own output"),
        ("scan.pdf", "{stem}.{ext}", None, True, None),  # cannot be told by name: kept
        ("{scan.png}.pdf", "{{{name}}}.{ext}", None, True, "ocrwatch's own output"),
    ],
)
def test_own_outputs_follow_the_template(
    relpath: str, template: str, inbox_name: str | None, inside: bool, rule: str | None
) -> None:
    verdict = policy.candidate_verdict(
        PurePath(relpath),
        include=IMAGES,
        exclude=(),
        output_template=template,
        outputs_inside_inbox=inside,
        inbox_name=inbox_name,
    )
    assert verdict.accepted is (rule is None)
    assert (verdict.rule or "").startswith(rule or "")


def test_empty_include_accepts_everything_not_ignored() -> None:
    def verdict(name: str) -> policy.Verdict:
        return policy.candidate_verdict(
            PurePath(name), include=(), exclude=(), output_template="{name}.{ext}",
            outputs_inside_inbox=True,
        )  # fmt: skip

    assert verdict("README").accepted
    assert verdict("report.pdf").accepted
    assert not verdict("README.md.txt").accepted


@pytest.mark.parametrize(
    ("pattern", "relpath", "matches"),
    [
        ("*.pdf", "a/b/x.PDF", True),  # no "/": the file name only
        ("in/*.pdf", "in/x.pdf", True),
        ("in/*.pdf", "in/sub/x.pdf", False),  # "*" stays within one folder
        ("in/**", "in/sub/x.pdf", True),
        ("scan-[0-9].png", "scan-7.png", True),
        ("scan-[!0-9].png", "scan-7.png", False),
        ("scan-?.png", "scan-ab.png", False),
        ("[[]x].png", "[x].png", True),
        ("x[--].png", "x-.png", True),  # no FutureWarning from re,
        ("stra\u00dfe.png", "STRASSE.png", True),  # case folding, not just lower()
    ],
)
def test_exclude_patterns(pattern: str, relpath: str, matches: bool) -> None:
    verdict = policy.candidate_verdict(
        PurePath(relpath), include=(), exclude=(pattern,), output_template="{name}.{ext}",
        outputs_inside_inbox=False,
    )  # fmt: skip
    assert verdict.accepted is not matches


@pytest.mark.parametrize(
    ("name", "pattern"),
    [("@eaDir", "@eaDir"), (".git", ".*"), ("Scans", None), ("x.tmp", "*.tmp"), ("\udcff", None)],
)
def test_builtin_ignore_of_one_component(name: str, pattern: str | None) -> None:
    assert policy.builtin_ignore(name) == pattern


# ---- output paths -----------------------------------------------------------------------

TEXT, PDF, HOCR, JSON = ResultFormat.TEXT, ResultFormat.PDF, ResultFormat.HOCR, ResultFormat.JSON


@pytest.mark.parametrize(
    ("source", "output_dir", "template", "expected"),
    [
        ("/in/scan.png", None, "{name}.{ext}", {TEXT: "/in/scan.png.txt", PDF: "/in/scan.png.pdf"}),
        ("/in/a/b/scan.png", "/out", "{name}.{ext}",
         {TEXT: "/out/a/b/scan.png.txt", PDF: "/out/a/b/scan.png.pdf"}),
        ("/in/scan.png", "/out", "{stem}.{ext}", {TEXT: "/out/scan.txt", PDF: "/out/scan.pdf"}),
        ("/in/x/scan.tar.png", None, "{inbox}_{stem}{suffix}.{ext}",
         {TEXT: "/in/x/mail_scan.tar.png.txt", PDF: "/in/x/mail_scan.tar.png.pdf"}),
        ("/in/README", None, "{name}{suffix}.{ext}",
         {TEXT: "/in/README.txt", PDF: "/in/README.pdf"}),
    ],
)  # fmt: skip
def test_output_paths(
    source: str, output_dir: str | None, template: str, expected: dict[ResultFormat, str]
) -> None:
    paths = policy.output_paths(
        PurePath(source),
        inbox_root=PurePath("/in"),
        output_dir=None if output_dir is None else PurePath(output_dir),
        template=template,
        formats=[TEXT, PDF],
        inbox_name="mail",
    )
    assert paths == {fmt: PurePath(p) for fmt, p in expected.items()}


@pytest.mark.parametrize(
    ("source", "template", "inbox_name", "formats", "message"),
    [
        ("/in/scan.png", "{inbox}/{name}.{ext}", "x", [TEXT], "not a single file name"),
        ("/in/scan.png", "{name}.{ext}", "x", [ResultFormat.IMAGE_PNG], "not written as sidecars"),
        ("/in/scan.png", "{inbox}.{ext}", "a/b", [TEXT], "not a single file name"),
        ("/in/scan.png", "{inbox}", "..", [TEXT], "not a single file name"),
        ("/in/scan.png", "{inbox}", "", [JSON], "not a single file name"),
        ("/in/scan.pdf", "{stem}.{ext}", "x", [PDF], "would overwrite the source"),
        ("/in/scan.png", "{name}.txt", "x", [TEXT, PDF], "same name"),
        ("/in/scan.png", "{name}.{nope}", "x", [TEXT], "fields are"),
        ("/in/scan.png", "{name.__class__}.{ext}", "x", [TEXT], "fields are"),
        ("/in/scan.png", "{name}}.{ext}", "x", [TEXT], "unbalanced brace"),
        ("/in/scan.png", "{name}.{ext", "x", [TEXT], "fields are"),
        ("/elsewhere/scan.png", "{name}.{ext}", "x", [TEXT], "not inside the inbox"),
        ("/in", "{name}.{ext}", "x", [TEXT], "not inside the inbox"),
        ("/in/scan.png", "{inbox}.{ext}", "x" * 300, [TEXT], "even when shortened"),
    ],
)
def test_output_paths_never_escape_the_target_folder(
    source: str, template: str, inbox_name: str, formats: list[ResultFormat], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        policy.output_paths(
            PurePath(source), inbox_root=PurePath("/in"), output_dir=None, template=template,
            formats=formats, inbox_name=inbox_name,
        )  # fmt: skip


def _name_bytes(name: str) -> int:
    return len(name.encode("utf-8", "surrogateescape"))


@pytest.mark.parametrize(
    "stem",
    ["a" * 251, "\u00e9" * 125, "\u6f22" * 83, "\udcff" * 251, "\U0001f600" * 62],
    ids=["ascii", "2-byte", "3-byte", "surrogate-escaped", "4-byte"],
)
def test_long_names_are_shortened_keeping_extensions(stem: str) -> None:
    source = PurePath("/in", stem + ".png")
    assert _name_bytes(source.name) <= 255 < _name_bytes(source.name + ".hocr")
    paths = policy.output_paths(
        source, inbox_root=PurePath("/in"), output_dir=None, template="{name}.{ext}",
        formats=[TEXT, HOCR], inbox_name="x",
    )  # fmt: skip
    for fmt, ext in ((TEXT, ".png.txt"), (HOCR, ".png.hocr")):
        name = paths[fmt].name
        assert 240 < _name_bytes(name) <= 255
        assert name.endswith(ext)
        assert name.startswith(stem[:20])
        assert "~" in name
        name.encode("utf-8", "surrogateescape")  # still encodable: no split sequences
    again = policy.output_paths(
        source, inbox_root=PurePath("/in"), output_dir=None, template="{name}.{ext}",
        formats=[TEXT], inbox_name="x",
    )  # fmt: skip
    assert again[TEXT] == paths[TEXT]  # deterministic
    other = policy.output_paths(
        PurePath("/in", stem[:-1] + "b.png"), inbox_root=PurePath("/in"), output_dir=None,
        template="{name}.{ext}", formats=[TEXT], inbox_name="x",
    )  # fmt: skip
    assert other[TEXT] != paths[TEXT]  # the hash tells near-identical long names apart


def test_a_huge_suffix_is_given_up_rather_than_overflowing() -> None:
    source = PurePath("/in", "a." + "b" * 250)
    name = policy.output_paths(
        source, inbox_root=PurePath("/in"), output_dir=None, template="{name}.{ext}",
        formats=[TEXT], inbox_name="x",
    )[TEXT].name  # fmt: skip
    assert _name_bytes(name) <= 255
    assert name.endswith(".txt")


@pytest.mark.parametrize(
    ("name", "expected_end"),
    [("scan.png", "scan.png.error.json"), ("x" * 250 + ".tif", ".tif.error.json")],
)
def test_reason_file_name(name: str, expected_end: str) -> None:
    reason = policy.reason_file_name(name)
    assert reason.endswith(expected_end)
    assert _name_bytes(reason) <= 255


@pytest.mark.parametrize(
    ("source", "target"),
    [("/in/scan.png", "/err/scan.png"), ("/in/a/b/scan.png", "/err/a/b/scan.png")],
)
def test_mirrored_path(source: str, target: str) -> None:
    got = policy.mirrored_path(
        PurePath(source), inbox_root=PurePath("/in"), target_root=PurePath("/err")
    )
    assert got == PurePath(target)


def test_mirrored_path_refuses_a_path_outside_the_inbox() -> None:
    with pytest.raises(ValueError, match="not inside the inbox"):
        policy.mirrored_path(
            PurePath("/in/../etc/passwd"), inbox_root=PurePath("/in"), target_root=PurePath("/e")
        )


@pytest.mark.parametrize(
    ("path", "root", "inside"),
    [
        ("/in/a.png", "/in", True),
        ("/in", "/in", True),
        ("/inbox/a.png", "/in", False),  # a prefix of the string is not containment
        ("/in/../etc", "/in", False),
        ("/other", "/in", False),
        ("/in/sub/x", "/in/sub", True),
    ],
)
def test_is_within(path: str, root: str, inside: bool) -> None:
    assert policy.is_within(PurePath(path), PurePath(root)) is inside


# ---- settling ---------------------------------------------------------------------------


def _state(*, first: float = 0.0, change: float = 0.0, event: float = 0.0) -> SettleState:
    return SettleState(
        first_seen_at=first, last_change_at=change, size=10, mtime_ns=5, last_event_at=event
    )


@pytest.mark.parametrize(
    ("previous", "size", "mtime_ns", "event", "expected"),
    [
        (None, 10, 5, False, _state(first=7, change=7, event=7)),
        (_state(), 10, 5, False, _state()),  # nothing changed
        (_state(), 11, 5, False, _state(change=7)),  # grew
        (_state(), 10, 6, False, _state(change=7)),  # touched
        (_state(), 10, 5, True, _state(change=7, event=7)),  # an event counts as a change
    ],
)
def test_observe(
    previous: SettleState | None, size: int, mtime_ns: int, event: bool, expected: SettleState
) -> None:
    state = policy.observe(previous, size=size, mtime_ns=mtime_ns, now=7.0, event=event)
    assert state.first_seen_at == expected.first_seen_at
    assert state.last_change_at == expected.last_change_at
    assert state.last_event_at == expected.last_event_at
    assert (state.size, state.mtime_ns) == (size, mtime_ns)


def _verdict(
    kind: str, check_again_at: float | None, reason: str, fails_at: float | None = None
) -> policy.SettleVerdict:
    return policy.SettleVerdict(kind, check_again_at, reason, fails_at)  # type: ignore[arg-type]


JPEG_CUT = "incomplete JPEG (no end marker)"


@pytest.mark.parametrize(
    ("state", "now", "incomplete", "expected"),
    [
        (_state(), 5.0, None, _verdict("settled", None, "unchanged for 5.0 s")),
        (_state(change=2.0), 5.0, None, _verdict("wait", 7.0, "changed recently")),
        (_state(event=3.0), 5.0, None, _verdict("wait", 8.0, "changed recently")),
        (_state(), 5.0, JPEG_CUT, _verdict("wait", 10.0, JPEG_CUT, 100.0)),
        (_state(), 98.0, JPEG_CUT, _verdict("wait", 100.0, JPEG_CUT, 100.0)),  # not yet past it
        (_state(change=97.0), 99.0, None, _verdict("wait", 100.0, "changed recently")),
        (_state(change=98.0), 100.0, None,
         _verdict("never_settled", None, "still growing after 100 s")),
        (_state(), 100.0, JPEG_CUT, _verdict("never_settled", None, f"{JPEG_CUT} after 100 s")),
        (_state(change=90.0), 100.0, None, _verdict("settled", None, "unchanged for 10.0 s")),
    ],
)  # fmt: skip
def test_settle_verdict(
    state: SettleState, now: float, incomplete: str | None, expected: policy.SettleVerdict
) -> None:
    verdict = policy.settle_verdict(
        state, now=now, settle_seconds=5.0, max_settle_seconds=100.0, incomplete_reason=incomplete
    )
    assert verdict == expected


@pytest.mark.parametrize(
    ("looks_complete", "reason", "expected"),
    [
        (None, None, _verdict("settled", None, "unchanged for 5.0 s")),
        (True, None, _verdict("settled", None, "unchanged for 5.0 s")),
        (False, None, _verdict("wait", 10.0, "does not look complete", 100.0)),
        (False, JPEG_CUT, _verdict("wait", 10.0, JPEG_CUT, 100.0)),
    ],
)
def test_settle_verdict_with_looks_complete(
    looks_complete: bool | None, reason: str | None, expected: policy.SettleVerdict
) -> None:
    verdict = policy.settle_verdict(
        _state(), now=5.0, settle_seconds=5.0, max_settle_seconds=100.0,
        looks_complete=looks_complete, incomplete_reason=reason,
    )  # fmt: skip
    assert verdict == expected


# ---- watch mode -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "fstype", "mode", "reason"),
    [
        (WatchMode.AUTO, "nfs4", WatchMode.POLLING, "nfs4 does not deliver change events"),
        (WatchMode.AUTO, "cifs", WatchMode.POLLING, "cifs does not deliver change events"),
        (WatchMode.AUTO, "fuse.sshfs", WatchMode.POLLING, "fuse.sshfs does not deliver"),
        (WatchMode.AUTO, "9p", WatchMode.POLLING, "9p does not deliver"),
        (WatchMode.AUTO, "ext4", WatchMode.EVENTS, "ext4 delivers change events"),
        (WatchMode.AUTO, "overlay", WatchMode.EVENTS, "overlay delivers"),
        (WatchMode.AUTO, None, WatchMode.EVENTS, "file system type unknown"),
        (WatchMode.EVENTS, "nfs4", WatchMode.EVENTS, "events requested"),
        (WatchMode.POLLING, "ext4", WatchMode.POLLING, "polling requested"),
    ],
)
def test_choose_watch_mode(
    requested: WatchMode, fstype: str | None, mode: WatchMode, reason: str
) -> None:
    chosen, why = policy.choose_watch_mode(requested, fstype)
    assert chosen is mode
    assert why.startswith(reason)
