"""What an import reads: rows given inline or streamed from a CSV upload.

A source hands out rows in chunks, so an upload is never held in memory whole, and
hashes its input as it goes, for the idempotency check.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO, Protocol

from domain.codes import CsvLayout, RowError, RowFault, parse_expiry, parse_header
from domain.moments import as_utc

MAX_CSV_ROWS = 1_000_000
_READ_BLOCK = 1 << 16


@dataclass(frozen=True, slots=True)
class RawRow:
    """A row as uploaded, before the rules; ``row`` counts data rows from 1."""

    row: int
    code: str
    password: str | None
    expires_at: datetime | None


class MalformedInput(Exception):
    """The upload as a whole cannot be read (not the fault of one row)."""


class RowSource(Protocol):
    kind: str
    # The input field that user errors about the whole upload name.
    field: str

    async def chunk(self, size: int) -> list[RawRow | RowError] | None:
        """The next rows, None at the end. Raises MalformedInput."""

    async def content_hash(self) -> bytes:
        """SHA-256 of the whole input, read to its end if need be."""

    def rewind(self) -> None:
        """Start again from the first row (the import is retried after a deadlock)."""


class ListSource:
    """Rows given inline (``importCodes``)."""

    kind = "list"
    field = "codes"

    def __init__(self, rows: Sequence[tuple[str, str | None, datetime | None]]) -> None:
        self._rows = rows
        self._next = 0

    def rewind(self) -> None:
        self._next = 0

    async def chunk(self, size: int) -> list[RawRow | RowError] | None:
        start = self._next
        if start >= len(self._rows):
            return None
        self._next = start + size
        return [
            RawRow(start + i + 1, code, password, expires)
            for i, (code, password, expires) in enumerate(self._rows[start : start + size])
        ]

    async def content_hash(self) -> bytes:
        return await asyncio.to_thread(self._hash)

    def _hash(self) -> bytes:
        canonical = [[code, password, _moment(expires)] for code, password, expires in self._rows]
        text = json.dumps(canonical, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode()).digest()


class _HashingReader(io.RawIOBase):
    """Reads a binary file through a hash, so the bytes are hashed as they stream by."""

    def __init__(self, raw: BinaryIO, digest: hashlib._Hash) -> None:
        self._raw = raw
        self._digest = digest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        self._digest.update(data)
        return len(data)


class CsvSource:
    """Rows of a CSV upload (``importCodesCsv``), streamed from its (spooled) file.

    The header names the columns ``code``, ``password`` and ``expiresAt`` in any order;
    only ``code`` is required. Rows are numbered from 1 at the first row after the header.
    Blank rows are skipped (they keep their number). Reading happens in a worker thread.
    """

    kind = "csv"
    field = "file"

    def __init__(self, file: BinaryIO, max_rows: int = MAX_CSV_ROWS) -> None:
        self._file = file
        self._max_rows = max_rows
        self.rewind()

    def rewind(self) -> None:
        self._digest = hashlib.sha256()
        self._reader: Iterator[list[str]] | None = None
        self._layout: CsvLayout | None = None
        self._row = 0
        self._done = False

    async def chunk(self, size: int) -> list[RawRow | RowError] | None:
        if self._done:
            return None
        rows = await asyncio.to_thread(self._read, size)
        return rows or None

    async def content_hash(self) -> bytes:
        if self._done:
            return self._digest.digest()
        return await asyncio.to_thread(self._hash_from_start)

    def _hash_from_start(self) -> bytes:
        self._file.seek(0)
        digest = hashlib.sha256()
        while block := self._file.read(_READ_BLOCK):
            digest.update(block)
        return digest.digest()

    def _open(self) -> tuple[Iterator[list[str]], CsvLayout]:
        if self._reader is None or self._layout is None:
            self._file.seek(0)
            buffered = io.BufferedReader(_HashingReader(self._file, self._digest), _READ_BLOCK)
            text = io.TextIOWrapper(buffered, encoding="utf-8-sig", newline="")
            self._reader = csv.reader(text)
            header = self._next_record()
            if header is None:
                raise MalformedInput(
                    "The file is empty: its first row must be the header code,password,expiresAt."
                )
            layout = parse_header(header)
            if isinstance(layout, str):
                raise MalformedInput(layout)
            self._layout = layout
        return self._reader, self._layout

    def _next_record(self) -> list[str] | None:
        assert self._reader is not None
        try:
            return next(self._reader, None)
        except UnicodeDecodeError:
            raise MalformedInput("The file is not UTF-8 text.") from None
        except csv.Error:
            # csv's messages do not quote the data, but say it our way anyway.
            raise MalformedInput(f"The file is not valid CSV after row {self._row}.") from None

    def _read(self, size: int) -> list[RawRow | RowError]:
        _, layout = self._open()
        rows: list[RawRow | RowError] = []
        while len(rows) < size:
            cells = self._next_record()
            if cells is None:
                self._done = True
                break
            self._row += 1
            if self._row > self._max_rows:
                raise MalformedInput(
                    f"The file has more than {self._max_rows:,} rows: split it into several."
                )
            if not any(c.strip() for c in cells):
                continue
            rows.append(_csv_row(self._row, cells, layout))
        return rows


def _csv_row(row: int, cells: list[str], layout: CsvLayout) -> RawRow | RowError:
    if len(cells) > layout.width:
        return RowError(
            row,
            RowFault.INVALID_INPUT,
            f"The row has {len(cells)} cells where the header names {layout.width}.",
        )

    def cell(index: int | None) -> str:
        return cells[index] if index is not None and index < len(cells) else ""

    try:
        expires_at = parse_expiry(cell(layout.expires_at))
    except ValueError:
        return RowError(row, RowFault.INVALID_INPUT, "expiresAt is not an ISO-8601 date or time.")
    return RawRow(row, cell(layout.code), cell(layout.password) or None, expires_at)


def _moment(expires: datetime | None) -> str | None:
    """An expiry as hashed: in UTC where it has one (an impossible one is refused later)."""
    if expires is None:
        return None
    try:
        return as_utc(expires).isoformat()
    except ValueError:
        return expires.isoformat()
