"""The keyring: data keys stored wrapped by the master key, one of them active.

Every process loads the keyring at start and reloads it when it meets a key id it does
not know, so ``quanyi rotate-keys`` can run while servers keep reading and writing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from domain import crypto
from persistence.types import Db

_WRAP_AAD = b"quanyi:data-key:"


@dataclass
class Keyring:
    master_key: bytes
    keys: dict[int, bytes] = field(default_factory=dict)
    active_id: int = 0

    @property
    def fingerprint_key(self) -> bytes:
        return crypto.derive(self.master_key, "fingerprint")

    @classmethod
    async def load(cls, db: Db, master_key: bytes) -> Keyring:
        """The keyring, creating the first data key on a new database."""
        keyring = cls(master_key)
        await keyring.reload(db)
        if not keyring.keys:
            # Two processes may start on a new database at once: the first key has id 1
            # and the loser's insert is skipped.
            await db.execute(
                "INSERT INTO encryption_keys (id, wrapped_key, active) VALUES (1, $1, true)"
                " ON CONFLICT DO NOTHING",
                keyring._wrap(1, crypto.new_data_key()),
            )
            await keyring.reload(db)
        return keyring

    async def reload(self, db: Db) -> None:
        rows = await db.fetch("SELECT id, wrapped_key, active FROM encryption_keys")
        keys = {}
        active = 0
        for row in rows:
            aad = _WRAP_AAD + str(row["id"]).encode()
            keys[row["id"]] = crypto.open_sealed(self._wrapping_key, row["wrapped_key"], aad)
            if row["active"]:
                active = row["id"]
        self.keys, self.active_id = keys, active

    @property
    def _wrapping_key(self) -> bytes:
        return crypto.derive(self.master_key, "wrap")

    def _wrap(self, key_id: int, data_key: bytes) -> bytes:
        return crypto.seal(self._wrapping_key, data_key, _WRAP_AAD + str(key_id).encode())

    def fingerprint(self, code: str) -> bytes:
        return crypto.fingerprint(self.fingerprint_key, code)

    def encrypt(self, plaintext: str, aad: bytes) -> tuple[int, bytes]:
        """(key id, blob) under the active key."""
        return self.active_id, crypto.seal(self.keys[self.active_id], plaintext.encode(), aad)

    async def decrypt(self, db: Db, key_id: int, blob: bytes, aad: bytes) -> str:
        if key_id not in self.keys:
            await self.reload(db)
        return crypto.open_sealed(self.keys[key_id], blob, aad).decode()


async def add_key(db: Db, keyring: Keyring, *, activate: bool) -> int:
    """Store a new data key; with ``activate`` it becomes the one new blobs use."""
    key_id = int(await db.fetchval("SELECT coalesce(max(id), 0) + 1 FROM encryption_keys"))
    wrapped = keyring._wrap(key_id, crypto.new_data_key())
    if activate:
        await db.execute("UPDATE encryption_keys SET active = false WHERE active")
    await db.execute(
        "INSERT INTO encryption_keys (id, wrapped_key, active) VALUES ($1, $2, $3)",
        key_id,
        wrapped,
        activate,
    )
    return key_id
