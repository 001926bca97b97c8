"""Code pools and code imports: types, inputs and payloads."""

from __future__ import annotations

import enum
from datetime import datetime

import strawberry
from strawberry.file_uploads import Upload

from domain.codes import masked
from persistence.codes import CodeRecord
from persistence.pools import PoolRecord
from schema import ids
from schema.context import Info
from schema.errors import ErrorCode, UserError
from schema.pagination import Connection


@strawberry.enum(description="Where a code is in its life.")
class CodeStatus(enum.Enum):
    AVAILABLE = "available"
    RESERVED = "reserved"
    SOLD = "sold"
    FROZEN = "frozen"
    VOIDED = "voided"


@strawberry.type(description="A pool's codes by state, from its counters.")
class PoolStock:
    available: int
    reserved: int
    sold: int
    frozen: int
    voided: int


@strawberry.type(description="A code as listings show it: masked, never in plaintext.")
class CodeSummary:
    record: strawberry.Private[CodeRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return ids.encode("Code", self.record.id)

    @strawberry.field(description="The code's last characters behind a mask.")
    def masked(self) -> str:
        return masked(self.record.last4)

    @strawberry.field
    def status(self) -> CodeStatus:
        return CodeStatus(self.record.status)

    @strawberry.field
    def expires_at(self) -> datetime | None:
        return self.record.expires_at

    @strawberry.field
    def created_at(self) -> datetime:
        return self.record.created_at


@strawberry.type(description="A stock of codes of one product (platform only).")
class Pool:
    record: strawberry.Private[PoolRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return ids.encode("Pool", self.record.id)

    @strawberry.field
    def name(self) -> str:
        return self.record.name

    @strawberry.field
    def product_id(self) -> strawberry.ID:
        return ids.encode("Product", self.record.product_id)

    @strawberry.field
    def stock(self) -> PoolStock:
        r = self.record
        return PoolStock(
            available=r.available,
            reserved=r.reserved,
            sold=r.sold,
            frozen=r.frozen,
            voided=r.voided,
        )

    @strawberry.field
    def created_at(self) -> datetime:
        return self.record.created_at

    @strawberry.field(description="The pool's codes in import order, masked.")
    async def codes(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        status: CodeStatus | None = None,
    ) -> Connection[CodeSummary]:
        from resolvers.pools import resolve_codes

        return await resolve_codes(info, self.record, first, after, status)


@strawberry.input
class CreatePoolInput:
    product_id: strawberry.ID
    name: str


@strawberry.type
class CreatePoolPayload:
    pool: Pool | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input(description="One code to import.")
class CodeInput:
    code: str
    password: str | None = None
    expires_at: datetime | None = strawberry.field(
        default=None, description="A time without a zone is taken as UTC."
    )


@strawberry.input
class ImportCodesInput:
    pool_id: strawberry.ID
    codes: list[CodeInput]
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="A retry with the same key and input returns the first result.",
    )


@strawberry.input
class ImportCodesCsvInput:
    pool_id: strawberry.ID
    file: Upload = strawberry.field(
        description=(
            "UTF-8 CSV with the header code,password,expiresAt (only code is required;"
            " expiresAt in ISO-8601)."
        )
    )
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="A retry with the same key and file returns the first result.",
    )


@strawberry.type(description="A row of an import that was not imported.")
class ImportRowError:
    row: int = strawberry.field(
        description="The row's number from 1: the index in `codes`, or the CSV row after"
        " the header."
    )
    code: ErrorCode
    message: str


@strawberry.type
class ImportCodesPayload:
    imported: int = 0
    duplicates: list[ImportRowError] = strawberry.field(default_factory=list)
    rejected: list[ImportRowError] = strawberry.field(default_factory=list)
    batch_id: strawberry.ID | None = strawberry.field(
        default=None, description="The import's batch; the same for a replayed retry."
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class PoolsQuery:
    @strawberry.field(description="The code pools of a product (platform only).")
    async def pools(self, info: Info, product_id: strawberry.ID) -> list[Pool]:
        from resolvers.pools import pools_of_product

        return await pools_of_product(info, product_id)

    @strawberry.field(description="A code pool (platform only).")
    async def pool(self, info: Info, id: strawberry.ID) -> Pool | None:
        from resolvers.pools import pool

        return await pool(info, id)


@strawberry.type
class PoolsMutation:
    @strawberry.mutation(description="Add an empty code pool to a product (platform only).")
    async def create_pool(self, info: Info, input: CreatePoolInput) -> CreatePoolPayload:
        from resolvers.pools import create_pool

        return await create_pool(info, input)

    @strawberry.mutation(description="Import codes into a pool, encrypted (platform only).")
    async def import_codes(self, info: Info, input: ImportCodesInput) -> ImportCodesPayload:
        from resolvers.pools import import_codes

        return await import_codes(info, input)

    @strawberry.mutation(
        description="Import codes from a CSV file (GraphQL multipart request; platform only)."
    )
    async def import_codes_csv(self, info: Info, input: ImportCodesCsvInput) -> ImportCodesPayload:
        from resolvers.pools import import_codes_csv

        return await import_codes_csv(info, input)
