"""Code pools and imports through real HTTP: lists, CSV multipart uploads, refusals, masks."""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from schema import ids
from tests.conftest import ISSUE_KEY, Api, Node

CREATE_POOL = """
mutation($input: CreatePoolInput!) {
  createPool(input: $input) {
    pool { id name productId stock { available reserved sold frozen voided } }
    userErrors { field code message }
  }
}
"""
RESULT = """
imported
duplicates { row code message }
rejected { row code message }
batchId
userErrors { field code message }
"""
IMPORT = "mutation($input: ImportCodesInput!) { importCodes(input: $input) {" + RESULT + "} }"
IMPORT_CSV = (
    "mutation($input: ImportCodesCsvInput!) { importCodesCsv(input: $input) {" + RESULT + "} }"
)
POOLS = """
query($productId: ID!) {
  pools(productId: $productId) { id name productId stock { available reserved sold frozen voided } }
}
"""
CODES = """
query($id: ID!, $first: Int, $after: String, $status: CodeStatus) {
  pool(id: $id) {
    stock { available }
    codes(first: $first, after: $after, status: $status) {
      edges { node { id masked status expiresAt createdAt } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""
LATER = (datetime.now(UTC) + timedelta(days=90)).replace(microsecond=0)
EARLIER = datetime.now(UTC) - timedelta(days=1)
NOTHING = {"imported": 0, "duplicates": [], "rejected": [], "batchId": None}


def forbidden(what: str) -> dict[str, Any]:
    return {
        "field": None,
        "code": "FORBIDDEN",
        "message": f"Only the platform's owners and operators {what}.",
    }


def secret_code() -> str:
    return "CARD-" + secrets.token_hex(8).upper()


@pytest.fixture
async def product(db: asyncpg.Connection[Any]) -> str:
    """A product, made in SQL: the catalog's own tests cover createProduct."""
    key = await db.fetchval(
        """INSERT INTO products (name, category, face_value, cost_price, base_price, fulfilment)
           VALUES ('Video VIP month', 'VIDEO', 30, 25, 27, 'POOL') RETURNING id"""
    )
    return ids.encode("Product", key)


@pytest.fixture
async def pool(api: Api, platform_key: str, product: str) -> str:
    made = await api.data(
        CREATE_POOL, {"input": {"productId": product, "name": "main"}}, token=platform_key
    )
    assert made["createPool"]["userErrors"] == []
    pool_id: str = made["createPool"]["pool"]["id"]
    return pool_id


async def finance_key(api: Api, platform_key: str) -> str:
    """A FINANCE key of the platform: it may see money, not manage stock."""
    root = await api.data("{ viewer { channel { id } } }", token=platform_key)
    issued = await api.data(
        ISSUE_KEY,
        {
            "input": {
                "channelId": root["viewer"]["channel"]["id"],
                "name": "finance",
                "role": "FINANCE",
            }
        },
        token=platform_key,
    )
    secret: str = issued["issueApiKey"]["secret"]
    return secret


async def counts(db: asyncpg.Connection[Any]) -> tuple[int, int, int, int]:
    """(pools, codes, batches, available over all pools): what a refusal must not change."""
    row = await db.fetchrow(
        """SELECT (SELECT count(*) FROM pools) AS pools, (SELECT count(*) FROM codes) AS codes,
                  (SELECT count(*) FROM code_batches) AS batches,
                  (SELECT coalesce(sum(available), 0) FROM pools) AS available"""
    )
    assert row is not None
    return row["pools"], row["codes"], row["batches"], row["available"]


async def upload(
    api: Api,
    token: str,
    pool_id: str,
    content: bytes,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """importCodesCsv as a GraphQL multipart request: operations, map, then the file."""
    operations = {
        "query": IMPORT_CSV,
        "variables": {
            "input": {"poolId": pool_id, "file": None, "idempotencyKey": idempotency_key}
        },
    }
    response = await api.http.post(
        api.url,
        files={
            "operations": (None, json.dumps(operations)),
            "map": (None, json.dumps({"0": ["variables.input.file"]})),
            "0": ("codes.csv", content, "text/csv"),
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert not body.get("errors"), body["errors"]
    payload: dict[str, Any] = body["data"]["importCodesCsv"]
    return payload


def without_batch(payload: dict[str, Any]) -> dict[str, Any]:
    assert payload["batchId"]
    return {k: v for k, v in payload.items() if k != "batchId"}


# --- pools ------------------------------------------------------------------------------


async def test_the_platform_creates_pools_and_lists_them(
    api: Api, platform_key: str, product: str
) -> None:
    # Given a product
    # When the platform adds two pools to it
    made = [
        await api.data(
            CREATE_POOL, {"input": {"productId": product, "name": name}}, token=platform_key
        )
        for name in ("  supplier  A ", "own stock")
    ]

    # Then each comes back empty, the name cleaned, tied to the product
    zero = {"available": 0, "reserved": 0, "sold": 0, "frozen": 0, "voided": 0}
    first = made[0]["createPool"]
    assert first["userErrors"] == []
    assert {k: v for k, v in first["pool"].items() if k != "id"} == {
        "name": "supplier A",
        "productId": product,
        "stock": zero,
    }

    # And the product's pools list both, in creation order
    listed = await api.data(POOLS, {"productId": product}, token=platform_key)
    assert [p["name"] for p in listed["pools"]] == ["supplier A", "own stock"]
    assert [p["id"] for p in listed["pools"]] == [m["createPool"]["pool"]["id"] for m in made]


async def test_pools_are_the_platform_managers_own(
    api: Api,
    platform_key: str,
    tree: dict[str, Node],
    product: str,
    db: asyncpg.Connection[Any],
) -> None:
    # Given an agent, a platform FINANCE key and an unknown product
    finance = await finance_key(api, platform_key)
    missing_product = ids.encode("Product", 999_999)

    # When they try to create pools, or the platform names a wrong product or a blank name
    attempts = [
        (tree["A"].key, {"productId": product, "name": "mine"}),
        (finance, {"productId": product, "name": "mine"}),
        (platform_key, {"productId": missing_product, "name": "mine"}),
        (platform_key, {"productId": "not an id", "name": "mine"}),
        (platform_key, {"productId": ids.encode("Channel", 1), "name": "mine"}),
        (platform_key, {"productId": product, "name": "   "}),
    ]
    refusals = [
        (await api.data(CREATE_POOL, {"input": given}, token=token))["createPool"]
        for token, given in attempts
    ]

    # Then each is refused with its reason and no pool is made
    not_found = {"field": ["productId"], "code": "NOT_FOUND", "message": "No such product."}
    assert refusals == [
        {"pool": None, "userErrors": [forbidden("create pools")]},
        {"pool": None, "userErrors": [forbidden("create pools")]},
        {"pool": None, "userErrors": [not_found]},
        {"pool": None, "userErrors": [not_found]},
        {"pool": None, "userErrors": [not_found]},
        {
            "pool": None,
            "userErrors": [
                {
                    "field": ["name"],
                    "code": "INVALID_INPUT",
                    "message": "Give a name of 1 to 100 characters.",
                }
            ],
        },
    ]
    assert await counts(db) == (0, 0, 0, 0)

    # And once the platform has a pool, others see none of it
    made = await api.data(
        CREATE_POOL, {"input": {"productId": product, "name": "main"}}, token=platform_key
    )
    pool_id = made["createPool"]["pool"]["id"]
    for token in (tree["A"].key, tree["A11"].key, finance):
        assert await api.data(POOLS, {"productId": product}, token=token) == {"pools": []}
        assert await api.data(CODES, {"id": pool_id}, token=token) == {"pool": None}
    listed = await api.data(POOLS, {"productId": missing_product}, token=platform_key)
    assert listed == {"pools": []}


# --- importCodes ------------------------------------------------------------------------


async def test_import_a_list_then_list_the_codes_masked(
    api: Api, platform_key: str, pool: str
) -> None:
    # Given a pool and six rows: two good, a repeat of the first, an expired one,
    # an empty one and one too long
    good = [secret_code(), secret_code()]
    passwords = ["pin-" + secrets.token_hex(4)]
    rows = [
        {"code": good[0], "password": passwords[0], "expiresAt": LATER.isoformat()},
        {"code": f"  {good[1]} "},
        {"code": good[0], "password": "other"},
        {"code": secret_code(), "expiresAt": EARLIER.isoformat()},
        {"code": "  "},
        {"code": "X" * 300},
    ]

    # When the platform imports them
    response = await api.raw(IMPORT, {"input": {"poolId": pool, "codes": rows}}, token=platform_key)

    # Then two are imported and the others are reported by row
    assert without_batch(response["data"]["importCodes"]) == {
        "imported": 2,
        "duplicates": [
            {
                "row": 3,
                "code": "DUPLICATE_CODE",
                "message": "The code appears earlier in this upload.",
            }
        ],
        "rejected": [
            {"row": 4, "code": "CODE_EXPIRED", "message": "The code has already expired."},
            {"row": 5, "code": "INVALID_INPUT", "message": "The code is empty."},
            {
                "row": 6,
                "code": "INVALID_INPUT",
                "message": "The code is longer than 256 characters.",
            },
        ],
        "userErrors": [],
    }

    # And the pool lists them masked, in import order, never in full
    listed = await api.raw(CODES, {"id": pool}, token=platform_key)
    nodes = [e["node"] for e in listed["data"]["pool"]["codes"]["edges"]]
    assert listed["data"]["pool"]["stock"] == {"available": 2}
    assert [(n["masked"], n["status"], n["expiresAt"]) for n in nodes] == [
        ("••••" + good[0][-4:], "AVAILABLE", LATER.isoformat()),
        ("••••" + good[1][-4:], "AVAILABLE", None),
    ]
    assert await api.data(CODES, {"id": pool, "status": "SOLD"}, token=platform_key) == {
        "pool": {
            "stock": {"available": 2},
            "codes": {"edges": [], "pageInfo": {"hasNextPage": False, "endCursor": None}},
        }
    }

    # And no response carried a plaintext code or password
    seen = json.dumps([response, listed])
    for secret in [*good, *passwords]:
        assert secret not in seen


async def test_import_refusals_change_nothing(
    api: Api,
    platform_key: str,
    tree: dict[str, Node],
    pool: str,
    db: asyncpg.Connection[Any],
) -> None:
    # Given a pool that already holds one import made with the key "k1"
    first = await api.data(
        IMPORT,
        {"input": {"poolId": pool, "codes": [{"code": secret_code()}], "idempotencyKey": "k1"}},
        token=platform_key,
    )
    assert first["importCodes"]["imported"] == 1
    before = await counts(db)
    finance = await finance_key(api, platform_key)

    # When imports are refused for who asks, where, what and with which key
    fresh = [{"code": secret_code()}]
    attempts = [
        (tree["A"].key, {"poolId": pool, "codes": fresh}),
        (finance, {"poolId": pool, "codes": fresh}),
        (platform_key, {"poolId": ids.encode("Pool", 999_999), "codes": fresh}),
        (platform_key, {"poolId": "nonsense", "codes": fresh}),
        (platform_key, {"poolId": pool, "codes": []}),
        (platform_key, {"poolId": pool, "codes": fresh, "idempotencyKey": ""}),
        (platform_key, {"poolId": pool, "codes": fresh, "idempotencyKey": "k1"}),
    ]
    refusals = [
        (await api.data(IMPORT, {"input": given}, token=token))["importCodes"]
        for token, given in attempts
    ]

    # Then each gets its reason, and nothing was imported
    def refused(error: dict[str, Any]) -> dict[str, Any]:
        return {**NOTHING, "userErrors": [error]}

    no_pool = {"field": ["poolId"], "code": "NOT_FOUND", "message": "No such pool."}
    assert refusals == [
        refused(forbidden("import codes")),
        refused(forbidden("import codes")),
        refused(no_pool),
        refused(no_pool),
        refused(
            {"field": ["codes"], "code": "INVALID_INPUT", "message": "Give at least one code."}
        ),
        refused(
            {
                "field": ["idempotencyKey"],
                "code": "INVALID_INPUT",
                "message": "Give an idempotency key of 1 to 200 characters.",
            }
        ),
        refused(
            {
                "field": ["idempotencyKey"],
                "code": "IDEMPOTENCY_CONFLICT",
                "message": "This idempotency key was used for another import into this pool.",
            }
        ),
    ]
    assert await counts(db) == before


async def test_a_retried_import_returns_the_first_result(
    api: Api, platform_key: str, pool: str, db: asyncpg.Connection[Any]
) -> None:
    # Given an import with an idempotency key
    rows = [{"code": secret_code()}, {"code": secret_code()}, {"code": "   "}]
    variables = {"input": {"poolId": pool, "codes": rows, "idempotencyKey": "batch-7"}}
    first = await api.data(IMPORT, variables, token=platform_key)
    assert first["importCodes"]["imported"] == 2
    before = await counts(db)

    # When the client sends it again (its connection dropped before the answer)
    again = await api.data(IMPORT, variables, token=platform_key)

    # Then it gets the same answer, and nothing was imported twice
    assert again == first
    assert await counts(db) == before


# --- importCodesCsv ---------------------------------------------------------------------


async def test_a_csv_of_100000_rows(
    api: Api, platform_key: str, pool: str, db: asyncpg.Connection[Any]
) -> None:
    # Given a CSV of 100,000 rows made in memory: every 1,000th repeats the last good row
    # before it, every 997th has expired and every 4,999th has an unreadable date
    later = LATER.isoformat()
    lines = ["code,password,expiresAt"]
    expected_duplicates, expected_rejected = [], []
    codes = [f"CARD-{i:07d}-{secrets.token_hex(4).upper()}" for i in range(1, 100_001)]
    last_good = ""
    for row in range(1, 100_001):
        code = codes[row - 1]
        expires = later
        if row % 1000 == 0:
            code = last_good
            expected_duplicates.append(
                {
                    "row": row,
                    "code": "DUPLICATE_CODE",
                    "message": "The code appears earlier in this upload.",
                }
            )
        elif row % 997 == 0:
            expires = EARLIER.isoformat()
            expected_rejected.append(
                {"row": row, "code": "CODE_EXPIRED", "message": "The code has already expired."}
            )
        elif row % 4999 == 0:
            expires = "soon"
            expected_rejected.append(
                {
                    "row": row,
                    "code": "INVALID_INPUT",
                    "message": "expiresAt is not an ISO-8601 date or time.",
                }
            )
        else:
            last_good = code
        lines.append(f"{code},pw{row},{expires}")
    content = ("\n".join(lines) + "\n").encode()
    imported = 100_000 - len(expected_duplicates) - len(expected_rejected)

    # When it is uploaded in one multipart request
    started = time.perf_counter()
    payload = await upload(api, platform_key, pool, content, idempotency_key="big-one")
    elapsed = time.perf_counter() - started

    # Then every row is accounted for, by row number, in reasonable time
    assert without_batch(payload) == {
        "imported": imported,
        "duplicates": expected_duplicates,
        "rejected": expected_rejected,
        "userErrors": [],
    }
    assert elapsed < 30, f"100,000 rows took {elapsed:.1f} s"
    assert await db.fetchval("SELECT available FROM pools") == imported
    assert await db.fetchval("SELECT count(*) FROM codes") == imported

    # And the same upload again under the same key imports nothing more
    assert await upload(api, platform_key, pool, content, idempotency_key="big-one") == payload
    assert await db.fetchval("SELECT count(*) FROM codes") == imported

    # And the first page of the listing shows masks only
    listed = await api.raw(CODES, {"id": pool, "first": 100}, token=platform_key)
    masks = [e["node"]["masked"] for e in listed["data"]["pool"]["codes"]["edges"]]
    assert masks == ["••••" + c[-4:] for c in codes[:100]]
    assert not any(c in json.dumps(listed) for c in codes[:100])


async def test_csv_columns_in_any_order_with_quotes_blank_lines_and_a_bom(
    api: Api, platform_key: str, pool: str
) -> None:
    # Given a spreadsheet's export: a byte-order mark, CRLF line ends, columns reordered,
    # quoted cells, a blank line, a row with a cell too many and one without its code
    codes = ["GIFT,0001-" + secrets.token_hex(3), secret_code(), secret_code()]
    content = (
        "\ufeffexpiresAt,Code\r\n"
        f'{LATER.isoformat()},"{codes[0]}"\r\n'
        f",{codes[1]}\r\n"
        "\r\n"
        f"2030-01-01,{codes[2]},extra\r\n"
        f"{LATER.date().isoformat()},\r\n"
    ).encode()

    # When it is uploaded
    payload = await upload(api, platform_key, pool, content)

    # Then the well-formed rows are imported and the others reported by data row
    assert without_batch(payload) == {
        "imported": 2,
        "duplicates": [],
        "rejected": [
            {
                "row": 4,
                "code": "INVALID_INPUT",
                "message": "The row has 3 cells where the header names 2.",
            },
            {"row": 5, "code": "INVALID_INPUT", "message": "The code is empty."},
        ],
        "userErrors": [],
    }
    listed = await api.data(CODES, {"id": pool}, token=platform_key)
    nodes = [e["node"] for e in listed["pool"]["codes"]["edges"]]
    assert [(n["masked"], n["expiresAt"]) for n in nodes] == [
        ("••••" + codes[0][-4:], LATER.isoformat()),
        ("••••" + codes[1][-4:], None),
    ]


async def test_malformed_csv_files_are_refused_whole(
    api: Api, platform_key: str, tree: dict[str, Node], pool: str, db: asyncpg.Connection[Any]
) -> None:
    # Given a pool, and files that are empty, have unknown columns, no header (its first
    # code must not be echoed), no rows, or a 6,000th row that is not UTF-8 (after a
    # first chunk was written)
    good_rows = "".join(f"{secret_code()}\n" for _ in range(5_999))
    headless = secret_code()
    files = [
        b"",
        b"serial,pin\nABC-123,1\n",
        f"{headless}\n{secret_code()}\n".encode(),
        b"code\n",
        ("code\n" + good_rows).encode() + "caf\u00e9-card\n".encode("latin-1"),
    ]

    # When they are uploaded, and a good file by an agent
    refusals = [await upload(api, platform_key, pool, f) for f in files]
    refusals.append(await upload(api, tree["A"].key, pool, b"code\nABCDEFGH\n"))

    # Then each is refused whole with its reason, and nothing was imported
    def refused(message: str) -> dict[str, Any]:
        return {
            **NOTHING,
            "userErrors": [{"field": ["file"], "code": "INVALID_INPUT", "message": message}],
        }

    assert refusals == [
        refused("The file is empty: its first row must be the header code,password,expiresAt."),
        refused(
            "The first row must be the header code,password,expiresAt: its cell 1 names"
            " none of them."
        ),
        refused(
            "The first row must be the header code,password,expiresAt: its cell 1 names"
            " none of them."
        ),
        refused("There are no codes to import."),
        refused("The file is not UTF-8 text."),
        {**NOTHING, "userErrors": [forbidden("import codes")]},
    ]
    assert await counts(db) == (1, 0, 0, 0)
    assert headless not in json.dumps(refusals)
