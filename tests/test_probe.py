"""The probe on real files: images made with Pillow, cut short, swapped, linked and piped."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import stat
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pikepdf
import pytest
from PIL import Image

from ocrwatch import probe
from ocrwatch.errors import InputFileError
from ocrwatch.probe import FileKind

IS_ROOT = os.geteuid() == 0


def _pages(count: int, size: tuple[int, int] = (40, 30)) -> list[Image.Image]:
    # Fresh images per save: Pillow keeps encoder settings on an image between saves.
    return [Image.new("L", size, 60 * index) for index in range(count)]


def write_image(path: Path, fmt: str, *, pages: int = 1) -> Path:
    first, *rest = _pages(pages)
    if rest:
        first.save(path, format=fmt, save_all=True, append_images=rest)
    else:
        first.save(path, format=fmt)
    return path


FORMATS = {
    FileKind.PNG: "PNG",
    FileKind.JPEG: "JPEG",
    FileKind.GIF: "GIF",
    FileKind.BMP: "BMP",
    FileKind.TIFF: "TIFF",
    FileKind.PDF: "PDF",
    FileKind.WEBP: "WEBP",
    FileKind.PNM: "PPM",
}


@pytest.fixture
def make(tmp_path: Path) -> Callable[..., Path]:
    def make_file(kind: FileKind, *, name: str = "", pages: int = 1) -> Path:
        # A misleading extension on purpose: sniffing must not look at it.
        return write_image(tmp_path / (name or f"file-{kind.value}.dat"), FORMATS[kind],
                           pages=pages)  # fmt: skip

    return make_file


@pytest.mark.parametrize("kind", list(FORMATS))
def test_sniff_uses_magic_bytes(make: Callable[..., Path], kind: FileKind) -> None:
    assert probe.sniff(make(kind)) is kind


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (b"", FileKind.UNKNOWN),
        (b"hello, world", FileKind.UNKNOWN),
        (b"\x00" * 100 + b"%PDF-1.7\n", FileKind.PDF),  # junk before the header is allowed
        (b"II+\x00\x08\x00\x00\x00", FileKind.BIGTIFF),
        (b"BM", FileKind.UNKNOWN),  # too short for a BMP header
    ],
)
def test_sniff_odd_content(tmp_path: Path, content: bytes, kind: FileKind) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(content)
    assert probe.sniff(path) is kind


# ---- completeness -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(FORMATS))
def test_whole_files_look_complete(make: Callable[..., Path], kind: FileKind) -> None:
    assert probe.completeness(make(kind), kind) is None


def test_multipage_tiff_and_pdf_look_complete(make: Callable[..., Path]) -> None:
    assert probe.completeness(make(FileKind.TIFF, pages=3), FileKind.TIFF) is None
    assert probe.completeness(make(FileKind.PDF, pages=3), FileKind.PDF) is None


def _cut(path: Path, keep: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


@pytest.mark.parametrize(
    ("kind", "keep", "reason"),
    [
        (FileKind.JPEG, 0.7, "incomplete JPEG (no end marker)"),
        (FileKind.PNG, 0.9, "incomplete PNG (no IEND chunk)"),
        (FileKind.GIF, 0.8, "incomplete GIF (no trailer)"),
        (FileKind.BMP, 0.5, "incomplete BMP"),
        (FileKind.PDF, 0.6, "incomplete PDF (no %%EOF at the end)"),
        (FileKind.TIFF, 0.5, "incomplete TIFF"),
        (FileKind.TIFF, 0.004, "incomplete TIFF (header cut off)"),
        (FileKind.WEBP, 0.7, "incomplete WebP"),
        (FileKind.PNM, 0.7, "incomplete PNM"),
        (FileKind.JPEG, 0.0, "empty file"),
    ],
)
def test_files_cut_short_look_incomplete(
    make: Callable[..., Path], kind: FileKind, keep: float, reason: str
) -> None:
    got = probe.completeness(_cut(make(kind), keep), kind)
    assert got is not None
    assert got.startswith(reason)


def test_a_pnm_streamed_by_a_scanner_is_whole_once_its_last_row_is_there(tmp_path: Path) -> None:
    path = tmp_path / "scan.pnm"
    path.write_bytes(b"P6\n# scanimage\n800 ")
    assert probe.completeness(path, FileKind.PNM) == "incomplete PNM (header cut off)"
    header = b"P5\n# scanimage\n4 3\n65535\n"
    path.write_bytes(header + bytes(4 * 3 * 2 - 1))
    assert probe.completeness(path, FileKind.PNM) == "incomplete PNM (48 of 49 bytes)"
    path.write_bytes(header + bytes(4 * 3 * 2))
    assert probe.completeness(path, FileKind.PNM) is None


def test_multipage_tiff_cut_in_its_second_page(make: Callable[..., Path]) -> None:
    path = make(FileKind.TIFF, pages=3)
    assert probe.completeness(_cut(path, 0.5), FileKind.TIFF) == (
        "incomplete TIFF (page 2 image data is cut off)"
    )


def test_tiff_whose_first_directory_is_not_written_yet(tmp_path: Path) -> None:
    path = tmp_path / "scan.tif"
    path.write_bytes(b"II*\x00\x00\x00\x00\x00" + b"\x00" * 100)  # header patched last
    assert probe.completeness(path, FileKind.TIFF) == "incomplete TIFF (no page directory yet)"


def test_tiff_with_a_directory_loop_is_damaged(tmp_path: Path) -> None:
    entry = struct.pack("<HHII", 256, 4, 1, 1)  # ImageWidth = 1, inline
    ifd = struct.pack("<H", 1) + entry + struct.pack("<I", 8)  # next IFD: itself
    path = tmp_path / "loop.tif"
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd)
    assert probe.completeness(path, FileKind.TIFF) == "damaged TIFF (its page directories loop)"


def test_big_endian_tiff(tmp_path: Path) -> None:
    entries = [struct.pack(">HHII", 273, 4, 1, 100), struct.pack(">HHII", 279, 4, 1, 50)]
    ifd = struct.pack(">H", 2) + b"".join(entries) + struct.pack(">I", 0)
    head = b"MM\x00*" + struct.pack(">I", 8) + ifd
    path = tmp_path / "be.tif"
    path.write_bytes(head + b"\x00" * (150 - len(head)))
    assert probe.completeness(path, FileKind.TIFF) is None
    path.write_bytes(head + b"\x00" * (149 - len(head)))
    assert probe.completeness(path, FileKind.TIFF) == (
        "incomplete TIFF (page 1 image data is cut off)"
    )


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        (FileKind.JPEG, b"\x00" * 512),  # zero padding after the end marker
        (FileKind.PNG, b"\x00" * 16),
        (FileKind.PDF, b"\r\n\r\n   \n"),  # whitespace after %%EOF
        (FileKind.PDF, b"\x00" * 300 + b"junk from a scanner"),
        (FileKind.BMP, b"\x00" * 10),
    ],
)
def test_tolerated_trailing_bytes(make: Callable[..., Path], kind: FileKind, extra: bytes) -> None:
    path = make(kind)
    with path.open("ab") as file:
        file.write(extra)
    assert probe.completeness(path, kind) is None


@pytest.mark.parametrize(
    ("tail", "reason"),
    [
        (b"trailer\n<< /Size 3 >>\n%%EOF\n", "incomplete PDF (no startxref before %%EOF)"),
        (b"startxref\n999999\n%%EOF\n", "damaged PDF (startxref points past the end)"),
        (b"startxref\n9\n%%EOF" + b" " * 3000, "incomplete PDF (no %%EOF at the end)"),
        (b"startxref\n9\n%%EOF\n", None),
    ],
)
def test_pdf_tail_rules(tmp_path: Path, tail: bytes, reason: str | None) -> None:
    path = tmp_path / "x.pdf"
    path.write_bytes(b"%PDF-1.4\n" + tail)
    assert probe.completeness(path, FileKind.PDF) == reason


def test_completeness_of_a_large_file_reads_the_ends(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    with path.open("wb") as file:  # sparse: 100 MB on paper, a few bytes on disk
        file.write(b"\xff\xd8\xff\xe0")
        file.truncate(100 * 1024 * 1024)
        file.seek(0, os.SEEK_END)
        file.write(b"\xff\xd9")
    assert probe.completeness(path, FileKind.JPEG) is None


# ---- facts ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [k for k in FORMATS if k is not FileKind.PDF])
def test_inspect_images(make: Callable[..., Path], kind: FileKind) -> None:
    facts = probe.inspect(make(kind))
    assert (facts.kind, facts.width_px, facts.height_px) == (kind, 40, 30)
    assert facts.page_count == 1
    assert not facts.is_too_large
    assert not facts.is_encrypted
    assert facts.problem is None


def test_inspect_counts_tiff_pages(make: Callable[..., Path]) -> None:
    assert probe.inspect(make(FileKind.TIFF, pages=4)).page_count == 4


def test_inspect_counts_pdf_pages(make: Callable[..., Path]) -> None:
    facts = probe.inspect(make(FileKind.PDF, pages=3))
    assert (facts.kind, facts.page_count, facts.is_encrypted) == (FileKind.PDF, 3, False)


def test_inspect_reads_the_linearization_page_count(tmp_path: Path) -> None:
    path = tmp_path / "lin.pdf"
    path.write_bytes(b"%PDF-1.7\n1 0 obj\n<< /Linearized 1 /L 999 /N 12 /T 1 >>\nendobj\n")
    assert probe.inspect(path).page_count == 12


def test_inspect_counts_page_objects_across_chunk_boundaries(tmp_path: Path) -> None:
    path = tmp_path / "long.pdf"
    marker = b"<< /Type /Page >>"
    with path.open("wb") as file:
        file.write(b"%PDF-1.4\n")
        for chunk in range(1, 4):  # a marker straddling each 1 MiB boundary, another beside it
            file.seek(chunk * (1 << 20) - 7)
            file.write(marker + b" << /Type/Pages >> " + marker)
    assert probe.inspect(path).page_count == 6


@pytest.mark.parametrize(("user", "locked"), [("open sesame", True), ("", False)])
def test_inspect_tells_a_pdf_that_needs_a_password_from_one_with_an_owner_password_only(
    make: Callable[..., Path], user: str, locked: bool
) -> None:
    path = make(FileKind.PDF)
    with pikepdf.open(io.BytesIO(path.read_bytes())) as pdf:
        pdf.save(path, encryption=pikepdf.Encryption(owner="owner secret", user=user))
    facts = probe.inspect(path)
    assert facts.is_encrypted is locked  # an owner password alone opens in any viewer
    assert facts.page_count == 1


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_a_fact_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(50_000, 50_000))  # past Pillow's own hard limit
    facts = probe.inspect(path)  # the suite turns warnings into errors: none may escape
    assert facts.is_too_large
    assert facts.problem is not None
    assert facts.problem.startswith("too large")
    assert facts.width_px is None


def test_the_largest_page_is_measured_from_headers(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(_png_header_only(10_000, 10_000))  # past Pillow's warning: no warning
    facts = probe.inspect(path)
    assert (facts.is_too_large, facts.problem) == (False, None)
    assert facts.largest_page == (10_000, 10_000, 1)
    fax = tmp_path / "fax.tif"
    small, large = Image.new("1", (100, 100), 1), Image.new("1", (3000, 2000), 1)
    small.save(fax, "TIFF", compression="group4", save_all=True, append_images=[large, small])
    assert probe.inspect(fax).largest_page == (3000, 2000, 2)


def test_inspect_reports_an_unreadable_image(tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    facts = probe.inspect(path)
    assert facts.kind is FileKind.PNG
    assert facts.problem is not None
    assert facts.problem.startswith("unreadable PNG")


def test_inspect_unknown(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    facts = probe.inspect(path)
    assert (facts.kind, facts.size_bytes, facts.problem) == (FileKind.UNKNOWN, 5, None)


# ---- identity and safety ----------------------------------------------------------------


def test_fingerprint(make: Callable[..., Path]) -> None:
    path = make(FileKind.PNG)
    st = path.stat()
    quick = probe.fingerprint(path, with_hash=False)
    full = probe.fingerprint(path, with_hash=True)
    assert (quick.device, quick.inode, quick.size, quick.mtime_ns) == (
        st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
    )  # fmt: skip
    assert quick.sha256 is None
    assert full.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert full.same_file_as(quick)


def test_fingerprint_streams_a_multi_chunk_file(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    data = os.urandom(3 * (1 << 20) + 17)
    path.write_bytes(data)
    assert probe.fingerprint(path, with_hash=True).sha256 == hashlib.sha256(data).hexdigest()


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    root = tmp_path / "inbox"
    root.mkdir()
    return root


def test_refusal_accepts_a_regular_file(inbox: Path) -> None:
    path = inbox / "scan.png"
    path.write_bytes(b"x")
    assert probe.refusal(path, inbox_root=inbox) is None


def test_refusal_reasons(inbox: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"x")
    (inbox / "link.png").symlink_to(outside / "secret.png")
    (inbox / "folder-link").symlink_to(outside, target_is_directory=True)
    os.mkfifo(inbox / "pipe.png")
    (inbox / "sub.png").mkdir()

    assert probe.refusal(inbox / "link.png", inbox_root=inbox) == "symbolic link"
    assert probe.refusal(inbox / "pipe.png", inbox_root=inbox) == "FIFO"
    assert probe.refusal(inbox / "sub.png", inbox_root=inbox) == "directory"
    assert probe.refusal(inbox / "gone.png", inbox_root=inbox) == "vanished"
    assert probe.refusal(inbox / "sub.png" / "x" / "y", inbox_root=inbox) == "vanished"
    assert probe.refusal(inbox / "folder-link" / "secret.png", inbox_root=inbox) == (
        "outside the inbox"
    )
    assert probe.refusal(Path("/dev/null"), inbox_root=inbox) == "character device"


def test_refusal_of_a_socket(inbox: Path) -> None:
    path = inbox / "s.png"
    if len(os.fsencode(path)) >= 100:
        pytest.skip("tmp_path too long for a Unix socket name")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(os.fsencode(path))
        assert probe.refusal(path, inbox_root=inbox) == "socket"
        with pytest.raises(InputFileError, match="socket"):
            probe.sniff(path)


def test_refusal_of_a_block_device(inbox: Path) -> None:
    devices = [
        e.path for e in os.scandir("/dev") if stat.S_ISBLK(e.stat(follow_symlinks=False).st_mode)
    ]
    if not devices:
        pytest.skip("no block device visible")
    assert probe.refusal(Path(devices[0]), inbox_root=inbox) == "block device"


def test_open_for_upload_reads_the_settled_file(make: Callable[..., Path]) -> None:
    path = make(FileKind.JPEG)
    expected = probe.fingerprint(path, with_hash=True)
    with probe.open_for_upload(path, expected=expected) as file:
        assert file.read() == path.read_bytes()


def test_open_for_upload_refuses_a_changed_file(make: Callable[..., Path]) -> None:
    path = make(FileKind.JPEG)
    expected = probe.fingerprint(path, with_hash=False)
    with path.open("ab") as file:
        file.write(b"more")
    with pytest.raises(InputFileError, match="changed since it settled"):
        probe.open_for_upload(path, expected=expected)


def test_open_for_upload_refuses_a_replaced_file(make: Callable[..., Path], tmp_path: Path) -> None:
    path = make(FileKind.JPEG)
    expected = probe.fingerprint(path, with_hash=False)
    other = tmp_path / "other.jpg"
    other.write_bytes(path.read_bytes())
    os.utime(other, ns=(expected.mtime_ns, expected.mtime_ns))  # same size and mtime
    other.replace(path)  # a new inode
    with pytest.raises(InputFileError, match="changed since it settled"):
        probe.open_for_upload(path, expected=expected)


def test_open_for_upload_never_follows_a_swapped_in_symlink(
    make: Callable[..., Path], tmp_path: Path
) -> None:
    path = make(FileKind.JPEG)
    expected = probe.fingerprint(path, with_hash=False)
    path.unlink()
    path.symlink_to(make(FileKind.PNG, name="elsewhere.png"))
    with pytest.raises(InputFileError, match="symbolic link"):
        probe.open_for_upload(path, expected=expected)


def test_open_for_upload_does_not_hang_on_a_swapped_in_fifo(make: Callable[..., Path]) -> None:
    path = make(FileKind.JPEG)
    expected = probe.fingerprint(path, with_hash=False)
    path.unlink()
    os.mkfifo(path)  # opening it for reading without O_NONBLOCK would wait for a writer
    with pytest.raises(InputFileError, match="FIFO"):
        probe.open_for_upload(path, expected=expected)


def test_open_for_upload_lets_a_vanished_file_through(make: Callable[..., Path]) -> None:
    path = make(FileKind.JPEG)
    expected = probe.fingerprint(path, with_hash=False)
    path.unlink()
    with pytest.raises(FileNotFoundError):
        probe.open_for_upload(path, expected=expected)


@pytest.mark.skipif(IS_ROOT, reason="root reads files whatever their mode")
def test_open_for_upload_permission_denied(make: Callable[..., Path]) -> None:
    path = make(FileKind.JPEG)
    expected = probe.fingerprint(path, with_hash=False)
    path.chmod(0)
    try:
        with pytest.raises(InputFileError, match="permission denied"):
            probe.open_for_upload(path, expected=expected)
    finally:
        path.chmod(0o600)


def test_bigtiff(tmp_path: Path) -> None:
    entries = [struct.pack("<HHQQ", 273, 16, 1, 100), struct.pack("<HHQQ", 279, 16, 1, 50)]
    ifd = struct.pack("<Q", 2) + b"".join(entries) + struct.pack("<Q", 0)
    head = b"II+\x00" + struct.pack("<HHQ", 8, 0, 16) + ifd
    path = tmp_path / "big.tif"
    path.write_bytes(head + b"\x00" * (150 - len(head)))
    assert probe.sniff(path) is FileKind.BIGTIFF
    assert probe.completeness(path, FileKind.BIGTIFF) is None
    path.write_bytes(head + b"\x00" * (149 - len(head)))
    assert probe.completeness(path, FileKind.BIGTIFF) == (
        "incomplete TIFF (page 1 image data is cut off)"
    )
