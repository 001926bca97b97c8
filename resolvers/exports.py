"""CSV exports over plain HTTP with bearer auth: statements.

``GET /exports/statements/{channelId}.csv?from=&to=&account=`` answers 401 without a
valid credential, 404 for a channel outside the caller's subtree (or none), 400 for a
missing or malformed period or account, else the statement's entries streamed as CSV.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from domain import ledger as rules
from domain.credentials import CredentialError
from domain.ledger import as_seen
from domain.settlement import Account, earnings, wallet
from persistence import channels, ledger
from resolvers.authentication import authenticate
from schema import ids

if TYPE_CHECKING:
    from server import Services

STATEMENT_COLUMNS = (
    "entry_id",
    "transaction_id",
    "created_at",
    "kind",
    "reference",
    "memo",
    "amount",
    "balance_after",
)
# Rows written per chunk of the response.
CHUNK_ROWS = 200


def _text(status: int, message: str, **headers: str) -> Response:
    return PlainTextResponse(message + "\n", status_code=status, headers=headers)


def _csv_chunk(rows: Iterable[Iterable[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows([rules.neutralise_cell(cell) for cell in row] for row in rows)
    return out.getvalue()


async def statement_csv(request: Request) -> Response:
    services: Services = request.app.state.services
    try:
        viewer = await authenticate(
            services.db, services.reads, services.session_key, request.headers.get("authorization")
        )
    except CredentialError as error:
        return _text(401, str(error), **{"WWW-Authenticate": "Bearer"})
    if viewer is None:
        return _text(
            401,
            "Authentication required: send `Authorization: Bearer <token>`.",
            **{"WWW-Authenticate": "Bearer"},
        )

    channel_key = ids.decode("Channel", request.path_params["channel_id"])
    record = None
    if channel_key is not None:
        record = await channels.get_in_subtree(services.db, channel_key, viewer.channel_path)
    if record is None:
        return _text(404, "No such channel.")

    params = request.query_params
    start = rules.parse_moment(params.get("from", ""))
    end = rules.parse_moment(params.get("to", ""))
    if start is None or end is None:
        return _text(400, "Give `from` and `to` as ISO-8601 dates or date-times.")
    problem = rules.period_problem(start, end)
    if problem:
        return _text(400, problem)
    account_name = params.get("account", "CHANNEL_WALLET")
    if account_name == "CHANNEL_WALLET":
        account = wallet(record.id)
    elif account_name == "CHANNEL_EARNINGS":
        account = earnings(record.id)
    else:
        return _text(400, "`account` is CHANNEL_WALLET or CHANNEL_EARNINGS.")

    filename = f"statement-{request.path_params['channel_id']}-{account_name.lower()}.csv"
    return StreamingResponse(
        _statement_lines(services.db, account, start, end),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


async def _statement_lines(
    db: asyncpg.Pool[Any], account: Account, start: datetime, end: datetime
) -> AsyncIterator[str]:
    """The header, then one row per entry, from one snapshot, a chunk at a time."""
    yield _csv_chunk([STATEMENT_COLUMNS])
    async with db.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        summary = await ledger.statement_summary(conn, account, start, end)
        if summary.account_id is None:
            return
        chunk: list[list[str]] = []
        async for row in ledger.statement_rows(conn, summary.account_id, start, end):
            chunk.append(
                [
                    ids.encode("LedgerEntry", row.entry_id),
                    ids.encode("LedgerTransaction", row.transaction_id),
                    row.created_at.isoformat(),
                    row.kind.value,
                    rules.shown_reference(row.kind, row.reference) or "",
                    row.memo or "",
                    str(as_seen(account.kind, row.amount)),
                    str(as_seen(account.kind, summary.opening + row.running)),
                ]
            )
            if len(chunk) == CHUNK_ROWS:
                yield _csv_chunk(chunk)
                chunk = []
        if chunk:
            yield _csv_chunk(chunk)
