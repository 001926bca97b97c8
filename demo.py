"""``quanyi serve --demo`` and ``quanyi create-admin``: a platform to try at once.

Seeding is idempotent: a second ``--demo`` start finds what the first made. API keys
are only ever shown once, so each demo start revokes the previous demo keys and prints
fresh ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

import asyncpg

from domain import settlement
from domain.access import Role
from domain.catalog import Fulfilment, ProductCategory, ProductDraft
from domain.credentials import format_api_key, hash_password, new_api_key_secret
from domain.ledger import TransactionKind
from domain.pricing import resolve
from domain.staff import check_password, clean_email
from persistence import (
    api_keys,
    catalog,
    channels,
    codes,
    ledger,
    merchants,
    pools,
    pricing,
    users,
)
from persistence.channels import ChannelRecord
from persistence.import_sources import ListSource
from persistence.keyring import Keyring
from persistence.ledger import Conn
from persistence.types import Db
from resolvers.catalog import SUPPLIER_SECRET_AAD
from resolvers.supplier_clients import SupplierClients
from resolvers.supplier_sync import sync_supplier
from schema import ids
from settings import Settings

DEMO_PASSWORD = "quanyi-demo"  # noqa: S105 - printed for newcomers on purpose
DEMO_KEY_NAME = "demo key"
ADMIN_EMAIL = "admin@demo.quanyi.dev"
MERCHANT_NAME = "万达影城 Wanda Cinema (demo merchant)"
VERIFIER_KEY_NAME = "demo verifier"


@dataclass(frozen=True)
class DemoChannel:
    name: str
    email: str
    regions: tuple[str, ...] = ()


# Platform -> East China agent -> Shanghai distributor -> Pudong store, and a sibling
# agent in South China to show that agents do not see each other.
TREE: list[tuple[DemoChannel, list[tuple[DemoChannel, list[DemoChannel]]]]] = [
    (
        DemoChannel(
            "华东总代理 East China Agent", "east@demo.quanyi.dev", ("CN-SH", "CN-JS", "CN-ZJ")
        ),
        [
            (
                DemoChannel(
                    "上海分销商 Shanghai Distributor", "shanghai@demo.quanyi.dev", ("CN-SH",)
                ),
                [DemoChannel("浦东门店 Pudong Store", "pudong@demo.quanyi.dev", ("CN-SH",))],
            )
        ],
    ),
    (DemoChannel("华南总代理 South China Agent", "south@demo.quanyi.dev", ("CN-GD",)), []),
]

# (name, category, face value, cost, base price, codes in its pool)
PRODUCTS: list[tuple[str, ProductCategory, str, str, str, int]] = [
    ("腾讯视频VIP月卡 Tencent Video VIP 1 month", ProductCategory.VIDEO, "30", "18.50", "20", 200),
    ("网易云音乐黑胶VIP月卡 NetEase Music VIP", ProductCategory.MUSIC, "15", "9.20", "10", 120),
    ("Steam钱包充值卡 100元 Steam Wallet 100", ProductCategory.GAME, "100", "88", "91.50", 60),
    ("星巴克中杯兑换券 Starbucks Tall Coupon", ProductCategory.FOOD, "33", "21", "23", 80),
]


SUPPLIER_NAME = "演示供应商 Demo Supplier (simulator)"
# The simulator's SKUs the demo sells, with the platform's base price for each.
REALTIME_PRICES = {"VIDEO-VIP-1M": Decimal("27.00"), "GAME-100": Decimal("96.00")}
SIMULATOR_START_SECONDS = 15


@dataclass(frozen=True)
class DemoSupplier:
    url: str
    secret: str


@contextlib.contextmanager
def supplier_simulator(data_dir: Path) -> Iterator[DemoSupplier]:
    """The supplier simulator in a process of its own, for as long as the demo runs. Its
    port and secret are kept in the data directory, so a restart finds it where it was."""
    state = data_dir / "demo-supplier.json"
    saved = json.loads(state.read_text()) if state.exists() else {}
    secret = saved.get("secret") or secrets.token_urlsafe(32)
    port = saved.get("port")
    if not port or not _free(port):
        port = _any_free_port()
    fd = os.open(state, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"port": port, "secret": secret}, out)
    process = subprocess.Popen(  # noqa: S603 - our own module
        [
            sys.executable,
            "-m",
            "supplier_sim",
            "--port",
            str(port),
            # One argument: a token_urlsafe secret may begin with "-", which argparse would
            # take for an option of its own (the demo then failed to start, 1 time in 64).
            f"--secret={secret}",
            "--latency-ms",
            "300",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + SIMULATOR_START_SECONDS
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the demo's supplier simulator did not start")
            time.sleep(0.1)
        yield DemoSupplier(f"http://127.0.0.1:{port}", secret)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _any_free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.2):
            return True
    except OSError:
        return False


async def create_admin(dsn: str, email: str, password: str) -> str | None:
    """Create the platform owner; returns what is wrong instead when it cannot."""
    cleaned, problem = clean_email(email)
    problem = problem or check_password(password)
    if problem:
        return problem.message
    conn = await asyncpg.connect(dsn)
    try:
        root = await channels.root(conn)
        created = await users.insert(conn, root.id, cleaned, hash_password(password), Role.OWNER)
    finally:
        await conn.close()
    return None if created else f"a user with e-mail {cleaned} exists already"


async def seed(
    settings: Settings, host: str, port: int, supplier: DemoSupplier | None = None
) -> str:
    assert settings.database_url
    conn = await asyncpg.connect(settings.database_url)
    try:
        async with conn.transaction():
            lines, seeded = await _seed(conn)
            keyring = await Keyring.load(conn, settings.resolved_master_key())
            stocked = await _seed_catalog(conn, keyring)
            money = await _seed_commerce(conn, seeded)
            redeeming = await _seed_redemption(conn, seeded)
            supplier_id = await _seed_supplier(conn, keyring, supplier) if supplier else None
    finally:
        await conn.close()
    bought = await _sync_supplier(settings, keyring, supplier_id) if supplier_id else []
    url = f"http://{host}:{port}/graphql"
    return "\n".join(
        [
            "",
            "Quanyi demo is ready.",
            f"  GraphiQL:  {url}",
            f"  Log in as the platform owner: {ADMIN_EMAIL} / {DEMO_PASSWORD}",
            '    mutation { login(input: {email: "'
            + ADMIN_EMAIL
            + '", password: "'
            + DEMO_PASSWORD
            + '"}) { token userErrors { code message } } }',
            '  then set the header {"Authorization": "Bearer <token>"} in GraphiQL.',
            "  Channels (each owner logs in with the same password; API keys shown once):",
            *lines,
            "  Products with pools of codes:",
            *stocked,
            *bought,
            *money,
            *redeeming,
            "",
        ]
    )


async def _seed(db: Db) -> tuple[list[str], dict[str, ChannelRecord]]:
    """The tree, its owners and fresh keys: printed lines, and the channels by e-mail."""
    root = await channels.root(db)
    await _user(db, root, ADMIN_EMAIL)
    seeded = {ADMIN_EMAIL: root}
    lines = [await _key_line(db, root, ADMIN_EMAIL)]
    for agent, distributors in TREE:
        agent_record = seeded[agent.email] = await _channel(db, root, agent)
        lines.append(await _key_line(db, agent_record, agent.email))
        for distributor, stores in distributors:
            distributor_record = await _channel(db, agent_record, distributor)
            seeded[distributor.email] = distributor_record
            lines.append(await _key_line(db, distributor_record, distributor.email))
            for store in stores:
                store_record = seeded[store.email] = await _channel(db, distributor_record, store)
                lines.append(await _key_line(db, store_record, store.email))
    return lines, seeded


async def _channel(db: Db, parent: ChannelRecord, spec: DemoChannel) -> ChannelRecord:
    record = await channels.child_by_name(db, parent.id, spec.name)
    if record is None:
        record = await channels.insert_child(db, parent.id, spec.name, list(spec.regions), [])
    await _user(db, record, spec.email)
    return record


async def _user(db: Db, channel: ChannelRecord, email: str) -> None:
    await users.insert(db, channel.id, email, hash_password(DEMO_PASSWORD), Role.OWNER)


async def _key_line(db: Db, channel: ChannelRecord, email: str) -> str:
    await api_keys.revoke_named(db, channel.id, DEMO_KEY_NAME)
    secret, secret_hash = new_api_key_secret()
    key = await api_keys.insert(db, channel.id, DEMO_KEY_NAME, Role.OWNER, secret_hash)
    indent = "  " * (channel.level + 2)
    who = f"{channel.name} (level {channel.level}): {email}"
    return f"{indent}{who}  key {format_api_key(key.id, secret)}"


async def _seed_catalog(db: Db, keyring: Keyring) -> list[str]:
    lines = []
    for name, category, face, cost, base, size in PRODUCTS:
        product_id = await catalog.product_id_by_name(db, name)
        if product_id is None:
            draft = ProductDraft(
                name=name,
                category=category,
                face_value=Decimal(face),
                cost_price=Decimal(cost),
                base_price=Decimal(base),
                fulfilment=Fulfilment.POOL,
                supplier_id=None,
                supplier_sku=None,
                validity_days=365,
                max_uses=1,
                on_shelf=True,
            )
            product_id = (await catalog.insert_product(db, draft)).id
            pool = await pools.insert(db, product_id, "demo stock")
            assert pool is not None
            rows = [(_demo_code(), _demo_code()[:6], None) for _ in range(size)]
            await codes.import_codes(db, keyring, pool.id, ListSource(rows))
        stock = sum(p.available for p in await pools.by_product(db, product_id))
        lines.append(f"    {name}: {stock} codes available")
    return lines


async def _seed_supplier(db: Conn, keyring: Keyring, supplier: DemoSupplier) -> int:
    """The simulator as the platform's supplier, pointed at where it runs now."""
    key_id, sealed = keyring.encrypt(supplier.secret, aad=SUPPLIER_SECRET_AAD)
    supplier_id = await catalog.supplier_id_by_name(db, SUPPLIER_NAME)
    if supplier_id is None:
        record = await catalog.insert_supplier(db, SUPPLIER_NAME, supplier.url, sealed, key_id)
        return record.id
    await catalog.reconnect_supplier(db, supplier_id, supplier.url, sealed, key_id)
    return supplier_id


async def _sync_supplier(settings: Settings, keyring: Keyring, supplier_id: int) -> list[str]:
    """The simulator's catalog, synced as ``syncSupplierCatalog`` does, and two of its
    products priced and put on shelf."""
    assert settings.database_url
    db = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    clients = SupplierClients(db, keyring, settings)
    try:
        await sync_supplier(db, clients, supplier_id)
        lines = ["  Products bought from the supplier when ordered (REALTIME):"]
        first = None
        async with db.acquire() as conn, conn.transaction():
            for sku, base_price in REALTIME_PRICES.items():
                product_id = await catalog.product_id_by_sku(conn, supplier_id, sku)
                assert product_id is not None, "the sync made it"
                draft = await catalog.lock_product(conn, product_id)
                assert draft is not None, "the sync made it"
                await catalog.update_product(
                    conn, product_id, replace(draft, base_price=base_price, on_shelf=True)
                )
                lines.append(f"    {draft.name} ({ids.encode('Product', product_id)})")
                first = first or ids.encode("Product", product_id)
        lines += [
            "  Buy one with the Pudong Store's key, and open the link page made for the buyer:",
            '    mutation { placeOrder(input: {idempotencyKey: "first-supplier-order", '
            f'productId: "{first}", quantity: 1, buyer: {{region: "CN-SH"}}, '
            "delivery: [{method: LINK}]}) { order { status deliveries { method status url } } "
            "codes { code } userErrors { code message } } }",
        ]
        return lines
    finally:
        await clients.aclose()
        await db.close()


async def _seed_redemption(db: Conn, seeded: dict[str, ChannelRecord]) -> list[str]:
    """A cinema that redeems the video codes the East China agent's subtree sells, and
    a fresh key for its till."""
    root = seeded[ADMIN_EMAIL]
    east = seeded["east@demo.quanyi.dev"]
    video = await catalog.product_id_by_name(db, PRODUCTS[0][0])
    assert video is not None
    await catalog.set_redeemable(db, video, True)
    merchant = next(
        (m for m in await merchants.page(db, root.path, 0, 100) if m.name == MERCHANT_NAME), None
    )
    if merchant is None:
        merchant = await merchants.insert(db, root.id, MERCHANT_NAME, ["CN-SH"])
        await merchants.set_channels(db, merchant.id, [east.id])
    await api_keys.revoke_named(db, root.id, VERIFIER_KEY_NAME)
    secret, secret_hash = new_api_key_secret()
    key = await api_keys.insert(
        db, root.id, VERIFIER_KEY_NAME, Role.VERIFIER, secret_hash, merchant.id
    )
    return [
        f"  Merchant {MERCHANT_NAME} redeems video codes sold under the East China agent.",
        f"    Its till's verifier key: {format_api_key(key.id, secret)}",
        "    Redeem a video code you bought (header Authorization: Bearer <the till's key>):",
        '    mutation { redeemCode(input: {code: "<code>", password: "<password>", '
        'region: "CN-SH", idempotencyKey: "scan-1"}) { redemption { usesLeft redeemedAt } '
        "userErrors { code message } } }",
    ]


def _demo_code() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(4))


async def _seed_commerce(db: Conn, seeded: dict[str, ChannelRecord]) -> list[str]:
    """Prices at three levels and prepaid balances moving down the tree."""
    east = seeded["east@demo.quanyi.dev"]
    shanghai = seeded["shanghai@demo.quanyi.dev"]
    pudong = seeded["pudong@demo.quanyi.dev"]
    video = await catalog.product_id_by_name(db, PRODUCTS[0][0])
    assert video is not None
    # East resells at 5% over what it pays, but gives Shanghai a fixed 21.00 for video;
    # Shanghai adds 8% for its stores.
    await pricing.set_default_markup(db, east.id, Decimal(5))
    await pricing.set_default_markup(db, shanghai.id, Decimal(8))
    await pricing.set_price(db, shanghai.id, video, price=Decimal("21.00"), markup_percent=None)
    for payee, payer, amount in (
        (east, None, "5000.00"),
        (shanghai, east, "1000.00"),
        (pudong, shanghai, "300.00"),
    ):
        source = settlement.wallet(payer.id) if payer else settlement.PAYMENT_CLEARING
        await ledger.post(
            db,
            TransactionKind.TOP_UP,
            settlement.top_up(payee.id, Decimal(amount), source),
            reference=f"demo-top-up-{payee.id}",
            channel_id=payee.id,
        )
    path = await pricing.price_path(db, pudong.path, video)
    assert path is not None
    chain = resolve(path.cost, path.base_price, path.levels)
    prices = " -> ".join(str(p) for p in chain.prices)
    lines = [f"  Price chain of {PRODUCTS[0][0]} (cost -> East -> Shanghai -> Pudong): {prices}"]
    lines.append("  Prepaid balances:")
    for channel in (east, shanghai, pudong):
        held = -await ledger.balance(db, settlement.wallet(channel.id))
        lines.append(f"    {channel.name}: {held}")
    product_id = ids.encode("Product", video)
    lines += [
        "  Buy a code with the Pudong Store's key (header Authorization: Bearer <its key>):",
        '    mutation { placeOrder(input: {idempotencyKey: "first-order", productId: "'
        + product_id
        + '", quantity: 1, buyer: {region: "CN-SH"}}) { order { status total } '
        "codes { code password } userErrors { code message } } }",
    ]
    return lines
