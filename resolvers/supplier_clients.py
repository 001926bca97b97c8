"""One open client and one circuit breaker per supplier, shared by the process.

An outage of one supplier must cost its orders no more than a refusal: after a run of
failed purchases the breaker opens and orders fail fast with SUPPLIER_UNAVAILABLE, while
other suppliers and pool products go on selling. One trial is let through after the
cool-down; its success closes the breaker again.
"""

from __future__ import annotations

import asyncio
import time

from domain.breaker import CircuitBreaker
from integrations.suppliers import HttpSupplier, SupplierAdapter
from persistence import catalog
from persistence.keyring import Keyring
from persistence.types import Db
from resolvers.catalog import SUPPLIER_SECRET_AAD
from settings import Settings


class UnknownSupplier(Exception):
    pass


class SupplierClients:
    def __init__(self, db: Db, keyring: Keyring, settings: Settings) -> None:
        self._db = db
        self._keyring = keyring
        self._settings = settings
        self._adapters: dict[int, SupplierAdapter] = {}
        self._breakers: dict[int, CircuitBreaker] = {}
        self._opening = asyncio.Lock()

    async def adapter(self, supplier_id: int) -> SupplierAdapter:
        """The supplier's client, opened on first use. Raises UnknownSupplier."""
        found = self._adapters.get(supplier_id)
        if found is not None:
            return found
        async with self._opening:
            found = self._adapters.get(supplier_id)
            if found is not None:
                return found
            connection = await catalog.supplier_connection(self._db, supplier_id)
            if connection is None:
                raise UnknownSupplier(supplier_id)
            secret = await self._keyring.decrypt(
                self._db, connection.key_id, connection.secret_ciphertext, SUPPLIER_SECRET_AAD
            )
            adapter = HttpSupplier(
                connection.base_url,
                secret.encode(),
                timeout=self._settings.supplier_timeout_seconds,
                allow_private=self._settings.allow_private_targets,
            )
            self._adapters[supplier_id] = adapter
            return adapter

    def breaker(self, supplier_id: int) -> CircuitBreaker:
        found = self._breakers.get(supplier_id)
        if found is None:
            found = self._breakers[supplier_id] = CircuitBreaker(
                failure_threshold=self._settings.supplier_breaker_failures,
                cool_down=self._settings.supplier_breaker_seconds,
            )
        return found

    def allows(self, supplier_id: int) -> bool:
        return self.breaker(supplier_id).allow(time.monotonic())

    def succeeded(self, supplier_id: int) -> None:
        self.breaker(supplier_id).record_success(time.monotonic())

    def failed(self, supplier_id: int) -> None:
        self.breaker(supplier_id).record_failure(time.monotonic())

    async def aclose(self) -> None:
        adapters, self._adapters = list(self._adapters.values()), {}
        for adapter in adapters:
            await adapter.aclose()
