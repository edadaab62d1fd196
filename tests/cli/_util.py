"""Helpers of the command-line tests."""

from __future__ import annotations

from pathlib import Path

import pytest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 100 and path.read_bytes()[:8] == PNG_MAGIC


def one_error_line(rc: int, capsys: pytest.CaptureFixture[str], *words: str) -> str:
    """Assert exit status 2, no traceback, and one ``captum-perturbmask: error:`` line on
    stderr, the last one (progress lines of work done before the error may precede it)."""
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, err
    line = err.strip().splitlines()[-1]
    assert line == errors[0] and line.startswith("captum-perturbmask: error: "), err
    for word in words:
        assert word in line, err
    return line


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width x height`` but holds a few bytes of pixels: its size is
    known after reading the header, decoding would allocate the whole image."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(bytes(64))
    return PNG_MAGIC + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
