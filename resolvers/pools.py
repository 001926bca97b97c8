"""Code pools and imports: platform owners and operators only.

Plaintext codes pass through here on their way in and are never logged or returned:
payloads carry counts, row numbers and masked tails.
"""

from __future__ import annotations

import logging

from starlette.datastructures import UploadFile

from domain.access import Principal
from domain.channels import clean_name
from domain.codes import RowError, may_manage_pools
from persistence import codes, pools
from persistence.codes import ImportRefused, ImportResult
from persistence.import_sources import CsvSource, ListSource, RowSource
from persistence.pools import PoolRecord
from schema import ids
from schema.context import Info, require_viewer
from schema.errors import ErrorCode, UserError, user_error
from schema.pagination import Connection, connection, window
from schema.pools import (
    CodeStatus,
    CodeSummary,
    CreatePoolInput,
    CreatePoolPayload,
    ImportCodesCsvInput,
    ImportCodesInput,
    ImportCodesPayload,
    ImportRowError,
    Pool,
)

log = logging.getLogger(__name__)

MAX_LIST_ROWS = 50_000
MAX_IDEMPOTENCY_KEY = 200


def _forbidden(what: str) -> UserError:
    return user_error(ErrorCode.FORBIDDEN, f"Only the platform's owners and operators {what}.")


def _pool_not_found() -> UserError:
    return user_error(ErrorCode.NOT_FOUND, "No such pool.", "poolId")


async def _find_pool(info: Info, pool_id: str) -> PoolRecord | None:
    key = ids.decode("Pool", pool_id)
    return None if key is None else await pools.get(info.context.services.db, key)


# --- queries ----------------------------------------------------------------------------


async def pools_of_product(info: Info, product_id: str) -> list[Pool]:
    viewer = require_viewer(info)
    key = ids.decode("Product", product_id)
    if key is None or not may_manage_pools(viewer):
        return []
    return [Pool(record=r) for r in await pools.by_product(info.context.services.db, key)]


async def pool(info: Info, pool_id: str) -> Pool | None:
    viewer = require_viewer(info)
    if not may_manage_pools(viewer):
        return None
    record = await _find_pool(info, pool_id)
    return Pool(record=record) if record else None


async def resolve_codes(
    info: Info, record: PoolRecord, first: int | None, after: str | None, status: CodeStatus | None
) -> Connection[CodeSummary]:
    viewer = require_viewer(info)
    win = window(first, after, info.context.services.settings.max_page_size)
    if not may_manage_pools(viewer):
        return connection([], win, key=lambda r: r.id, node=lambda r: CodeSummary(record=r))
    rows = await codes.page(
        info.context.services.db,
        record.id,
        status.value if status else None,
        win.after_key,
        win.limit,
    )
    return connection(rows, win, key=lambda r: r.id, node=lambda r: CodeSummary(record=r))


# --- mutations --------------------------------------------------------------------------


async def create_pool(info: Info, input: CreatePoolInput) -> CreatePoolPayload:
    viewer = require_viewer(info)
    if not may_manage_pools(viewer):
        return CreatePoolPayload(user_errors=[_forbidden("create pools")])
    name, problem = clean_name(input.name)
    if problem:
        return CreatePoolPayload(
            user_errors=[user_error(ErrorCode.INVALID_INPUT, problem.message, problem.field)]
        )
    product_id = ids.decode("Product", input.product_id)
    record = (
        None
        if product_id is None
        else await pools.insert(info.context.services.db, product_id, name)
    )
    if record is None:
        return CreatePoolPayload(
            user_errors=[user_error(ErrorCode.NOT_FOUND, "No such product.", "productId")]
        )
    return CreatePoolPayload(pool=Pool(record=record))


async def import_codes(info: Info, input: ImportCodesInput) -> ImportCodesPayload:
    viewer = require_viewer(info)
    refusal = _check_import(viewer, input.idempotency_key)
    if refusal:
        return ImportCodesPayload(user_errors=[refusal])
    if not input.codes:
        return ImportCodesPayload(
            user_errors=[user_error(ErrorCode.INVALID_INPUT, "Give at least one code.", "codes")]
        )
    if len(input.codes) > MAX_LIST_ROWS:
        return ImportCodesPayload(
            user_errors=[
                user_error(
                    ErrorCode.INVALID_INPUT,
                    f"Give at most {MAX_LIST_ROWS:,} codes per call; upload more as a CSV file.",
                    "codes",
                )
            ]
        )
    source = ListSource([(c.code, c.password, c.expires_at) for c in input.codes])
    return await _run_import(info, input.pool_id, source, input.idempotency_key)


async def import_codes_csv(info: Info, input: ImportCodesCsvInput) -> ImportCodesPayload:
    viewer = require_viewer(info)
    refusal = _check_import(viewer, input.idempotency_key)
    if refusal:
        return ImportCodesPayload(user_errors=[refusal])
    upload = input.file
    if not isinstance(upload, UploadFile):
        return ImportCodesPayload(
            user_errors=[user_error(ErrorCode.INVALID_INPUT, "Attach a CSV file.", "file")]
        )
    source = CsvSource(upload.file)
    return await _run_import(info, input.pool_id, source, input.idempotency_key)


def _check_import(viewer: Principal, idempotency_key: str | None) -> UserError | None:
    if not may_manage_pools(viewer):
        return _forbidden("import codes")
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
        return user_error(
            ErrorCode.INVALID_INPUT,
            f"Give an idempotency key of 1 to {MAX_IDEMPOTENCY_KEY} characters.",
            "idempotencyKey",
        )
    return None


async def _run_import(
    info: Info, pool_id: str, source: RowSource, idempotency_key: str | None
) -> ImportCodesPayload:
    record = await _find_pool(info, pool_id)
    if record is None:
        return ImportCodesPayload(user_errors=[_pool_not_found()])
    services = info.context.services
    try:
        result = await codes.import_codes(
            services.db, services.keyring, record.id, source, idempotency_key
        )
    except ImportRefused as refused:
        return ImportCodesPayload(
            user_errors=[user_error(ErrorCode[refused.code], refused.message, refused.field)]
        )
    if result.imported and not result.replayed:
        try:
            await services.pools.stock_added(record.id)
        except Exception:
            # The codes are committed and the counters with them; the actor re-reads
            # both when it next starts, so the import still stands.
            log.exception("pool %d: the actor did not take the new stock", record.id)
    return _payload(result)


def _payload(result: ImportResult) -> ImportCodesPayload:
    return ImportCodesPayload(
        imported=result.imported,
        duplicates=[_row_error(e) for e in result.duplicates],
        rejected=[_row_error(e) for e in result.rejected],
        batch_id=ids.encode("CodeBatch", result.batch_id),
    )


def _row_error(error: RowError) -> ImportRowError:
    return ImportRowError(row=error.row, code=ErrorCode[error.fault.value], message=error.message)
