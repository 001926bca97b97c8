"""The outbox worker: sends queued deliveries (WEBHOOK, EMAIL, SMS) and records each attempt.

Rows are queued in the transaction that makes an order PAID (``persistence.deliveries.
enqueue``), so a crash after that commit loses none: the worker finds them in the
database. It claims due rows with a lease, sends them concurrently (at most
``CONCURRENCY`` at a time), reads the codes only then, and records each attempt:

- success: DELIVERED, with DELIVERED code events; a DELIVERED row is never claimed again;
- a failure worth retrying: PENDING again after exponential backoff with full jitter,
  or later if the peer's Retry-After asks so, until ``outbox_max_attempts``, then DEAD;
- any other failure: DEAD at once; HTTP 410 from a webhook also disables its endpoint.

A process that dies mid-send leaves its claims behind; they are due again as soon as
another worker (or this process restarted) sees the dead worker's lock gone, and the
attempt is counted. The receiver may then get a message twice; a GENERIC webhook carries
the delivery's id as its ``webhook-id`` on every attempt, so receivers drop the repeat.
E-mail and SMS have no such id and may, rarely, arrive twice after a crash.

Without SMTP (``QUANYI_SMTP_HOST``) or an SMS provider (``QUANYI_SMS_URL``) configured,
EMAIL and SMS deliveries go DEAD at their first attempt, saying so in ``lastError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from domain import backoff
from integrations import http_outcome, tls, webhooks
from integrations.http_outcome import Outcome
from integrations.mail import MailSettings, build_code_message, send_mail
from integrations.sms import SmsSettings, render_sms, send_sms
from persistence import codes, deliveries, orders, webhook_endpoints
from persistence.codes import PlainCode
from persistence.deliveries import Job
from persistence.keyring import Keyring
from schema import ids
from settings import Settings

log = logging.getLogger(__name__)

CONCURRENCY = 32
# An attempt is bounded by SEND_TIMEOUT per network step; a claim outlives any attempt.
SEND_TIMEOUT = 10.0
LEASE_SECONDS = 120.0
# How long stopping waits for sends under way before it abandons them to the next worker.
STOP_GRACE = 5.0
GONE_REASON = "The receiver answered HTTP 410 Gone."
_KINDS: dict[str, webhooks.WebhookKind] = {
    "GENERIC": "GENERIC",
    "WECOM": "WECOM",
    "DINGTALK": "DINGTALK",
}


class Outbox:
    def __init__(self, db: asyncpg.Pool[Any], keyring: Keyring, settings: Settings) -> None:
        assert settings.database_url, "the outbox holds a connection of its own"
        self.db = db
        self.keyring = keyring
        self.settings = settings
        self._mail = _mail_settings(settings)
        self._sms = _sms_settings(settings)
        self._wakeup = asyncio.Event()
        self._sending: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        self._lock: asyncpg.Connection[Any] | None = None
        self._worker = 0
        self._released_at = 0.0

    async def start(self) -> None:
        self._http = httpx.AsyncClient(
            timeout=SEND_TIMEOUT, verify=tls.client_context(trust_env=True)
        )
        await self._take_worker_id()
        self._task = asyncio.create_task(self._run(), name="outbox")

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next poll. Cheap; never blocks."""
        self._wakeup.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sending:
            await asyncio.wait(self._sending, timeout=STOP_GRACE)
            for task in self._sending:
                task.cancel()
            await asyncio.gather(*self._sending, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
        if self._lock is not None:
            # Our claims left unrecorded become due for other workers from here on.
            await self._lock.close()

    async def _pass(self) -> None:
        """Claim what is due, as far as there is room, and start sending it."""
        if self._lock is None or self._lock.is_closed():
            await self._take_worker_id()
        now = time.monotonic()
        if now - self._released_at >= self.settings.outbox_poll_seconds:
            self._released_at = now
            released = await deliveries.release_abandoned(
                self.db, self.settings.outbox_max_attempts
            )
            if released:
                log.warning("outbox: %d deliveries of stopped workers are due again", released)
        while (free := CONCURRENCY - len(self._sending)) > 0:
            jobs = await deliveries.claim(self.db, self._worker, free, LEASE_SECONDS)
            for job in jobs:
                task = asyncio.create_task(self._deliver(job), name=f"delivery-{job.id}")
                self._sending.add(task)
                task.add_done_callback(self._sent)
            if len(jobs) < free:
                break

    async def _take_worker_id(self) -> None:
        assert self.settings.database_url
        if self._lock is not None and not self._lock.is_closed():
            await self._lock.close()
        self._lock = await asyncpg.connect(self.settings.database_url)
        self._worker = await deliveries.take_worker_id(self._lock)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        # A slot is free: more may be due.
        self._wakeup.set()

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()
            try:
                await self._pass()
            except Exception as error:
                # The database may be away for a moment; the rows wait for us there.
                log.warning("outbox pass failed: %s", type(error).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.settings.outbox_poll_seconds)

    async def _deliver(self, job: Job) -> None:
        try:
            outcome, code_ids = await self._attempt(job)
            await self._record(job, outcome, code_ids)
        except Exception as error:
            # Left SENDING: the lease runs out and the attempt is made again. The class
            # name only: messages of HTTP and SMTP errors can carry URLs with keys.
            log.error(
                "delivery %d, attempt %d failed unexpectedly: %s",
                job.id,
                job.attempt,
                type(error).__name__,
            )

    async def _attempt(self, job: Job) -> tuple[Outcome, list[int]]:
        """Send once; the outcome and the codes sent."""
        if job.payload is not None:
            return await self._webhook(
                job, webhooks.event(job.event, job.payload, job.created_at)
            ), []
        if job.order_status != "PAID":
            return http_outcome.failed(f"The order is {job.order_status}; nothing is sent."), []
        plain = await codes.reveal_order(self.db, self.keyring, job.order_id)
        if not plain:
            return http_outcome.failed("The order holds no codes."), []
        code_ids = [c.id for c in plain]
        if job.method == "WEBHOOK":
            return await self._webhook(job, self._paid_event(job, plain)), code_ids
        if job.method == "EMAIL":
            return await self._email(job, plain), code_ids
        if job.method == "SMS":
            return await self._sms_message(job, plain), code_ids
        return http_outcome.failed(f"{job.method} is not sent by the outbox."), []

    def _paid_event(self, job: Job, plain: Sequence[PlainCode]) -> dict[str, Any]:
        return webhooks.order_paid_event(
            ids.encode("Order", job.order_id),
            ids.encode("Channel", job.channel_id),
            ids.encode("Product", job.product_id),
            job.product_name,
            [
                {
                    "id": ids.encode("Code", c.id),
                    "code": c.code,
                    "password": c.password,
                    "expiresAt": c.expires_at,
                }
                for c in plain
            ],
            job.paid_at or job.created_at,
        )

    async def _webhook(self, job: Job, event: dict[str, Any]) -> Outcome:
        endpoint = job.endpoint
        assert endpoint is not None, "a WEBHOOK row names its endpoint"
        assert self._http is not None
        if endpoint.disabled:
            return http_outcome.failed("The webhook endpoint is disabled.")
        target = await webhook_endpoints.open_sealed(
            self.db, self.keyring, endpoint.key_id, endpoint.secret_ciphertext
        )
        return await webhooks.send(
            self._http,
            _KINDS[endpoint.kind],
            target.url,
            target.secret,
            # The same id on every attempt: receivers drop a message they had already.
            ids.encode("Delivery", job.id),
            event,
            allow_private=self.settings.allow_private_targets,
            now=datetime.now(UTC),
        )

    async def _email(self, job: Job, plain: Sequence[PlainCode]) -> Outcome:
        if isinstance(self._mail, str):
            return http_outcome.failed(self._mail)
        if not job.target:
            return http_outcome.failed("The delivery names no e-mail address.")
        try:
            message = build_code_message(
                job.target,
                ids.encode("Order", job.order_id),
                job.product_name,
                _code_fields(plain),
                self._mail.sender,
            )
        except ValueError as error:
            return http_outcome.failed(str(error))
        return await send_mail(self._mail, message)

    async def _sms_message(self, job: Job, plain: Sequence[PlainCode]) -> Outcome:
        if isinstance(self._sms, str):
            return http_outcome.failed(self._sms)
        assert self._http is not None
        if not job.target:
            return http_outcome.failed("The delivery names no phone number.")
        text = render_sms(
            self._sms.template,
            job.product_name,
            _code_fields(plain),
            ids.encode("Order", job.order_id),
        )
        return await send_sms(
            self._http,
            self._sms,
            job.target,
            text,
            allow_private=self.settings.allow_private_targets,
        )

    async def _record(self, job: Job, outcome: Outcome, code_ids: list[int]) -> None:
        if outcome.ok:
            async with self.db.acquire() as conn, conn.transaction():
                if await deliveries.mark_delivered(conn, job):
                    await orders.record_events(
                        conn,
                        code_ids,
                        "DELIVERED",
                        job.order_id,
                        job.channel_id,
                        f"outbox:{job.method}",
                    )
            return
        error = outcome.error or "failed"
        if outcome.gone and job.endpoint is not None:
            async with self.db.acquire() as conn, conn.transaction():
                if await deliveries.mark_dead(conn, job, error):
                    await webhook_endpoints.disable(conn, job.endpoint.id, GONE_REASON)
            return
        settings = self.settings
        if outcome.retry and job.attempt < settings.outbox_max_attempts:
            wait = 0.0
            if settings.outbox_retry_base_seconds > 0:
                wait = backoff.delay(
                    job.attempt - 1,
                    settings.outbox_retry_base_seconds,
                    settings.outbox_retry_cap_seconds,
                    random.random,
                )
            await deliveries.mark_retry(self.db, job, error, max(wait, outcome.retry_after or 0))
            return
        if outcome.retry:
            error = f"{error} (gave up after {job.attempt} attempts)"
        await deliveries.mark_dead(self.db, job, error)


def _code_fields(plain: Sequence[PlainCode]) -> list[dict[str, Any]]:
    return [{"code": c.code, "password": c.password, "expiresAt": c.expires_at} for c in plain]


def _mail_settings(settings: Settings) -> MailSettings | str:
    """The SMTP settings, or why there are none (said in every EMAIL delivery's error)."""
    if not settings.smtp_host:
        return "E-mail is not configured on this server (QUANYI_SMTP_HOST)."
    try:
        return MailSettings(
            host=settings.smtp_host,
            port=settings.smtp_port,
            use_tls=settings.smtp_tls,
            start_tls=settings.smtp_starttls,
            username=settings.smtp_user,
            password=(
                settings.smtp_password.get_secret_value() if settings.smtp_password else None
            ),
            sender=settings.smtp_sender,
            timeout=SEND_TIMEOUT,
        )
    except ValueError as error:
        return f"E-mail is misconfigured: {error}"


def _sms_settings(settings: Settings) -> SmsSettings | str:
    if not settings.sms_url:
        return "SMS is not configured on this server (QUANYI_SMS_URL)."
    try:
        return SmsSettings(
            url=settings.sms_url,
            api_key=settings.sms_api_key.get_secret_value() if settings.sms_api_key else None,
            template=settings.sms_template,
            sender=settings.sms_sender,
            timeout=SEND_TIMEOUT,
        )
    except ValueError as error:
        return f"SMS is misconfigured: {error}"
