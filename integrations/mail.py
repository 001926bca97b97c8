"""E-mail delivery of codes to the buyer over SMTP, in Chinese and English."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any

import aiosmtplib

from integrations import http_outcome
from integrations.http_outcome import Outcome

_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class MailSettings:
    host: str
    port: int
    use_tls: bool
    start_tls: bool
    username: str | None
    password: str | None = field(repr=False)
    sender: str
    timeout: float

    def __post_init__(self) -> None:
        if self.use_tls and self.start_tls:
            raise ValueError("use_tls (implicit TLS) and start_tls exclude each other")


def build_code_message(
    to: str, order_ref: str, product_name: str, codes: list[dict[str, Any]], sender: str
) -> EmailMessage:
    """One message to one buyer. Raises ValueError for an address that is not one."""
    if not _is_address(to):
        raise ValueError("recipient is not an e-mail address")
    product = _inline(product_name)
    message = EmailMessage()
    message["Subject"] = f"您的卡密 / Your codes — {product}"
    message["From"] = sender
    message["To"] = to
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2] or None)
    message.set_content(_plain(order_ref, product, codes))
    message.add_alternative(_html(order_ref, product, codes), subtype="html")
    return message


async def send_mail(settings: MailSettings, message: EmailMessage) -> Outcome:
    """Send once. 4xx replies and connection trouble are worth retrying; 5xx replies are not."""
    try:
        await aiosmtplib.send(
            message,
            hostname=settings.host,
            port=settings.port,
            username=settings.username,
            password=settings.password,
            use_tls=settings.use_tls,
            start_tls=settings.start_tls,
            timeout=settings.timeout,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        return _reply_outcome(
            min((refused.code for refused in exc.recipients), default=550), "recipient refused"
        )
    except aiosmtplib.SMTPResponseException as exc:
        # The reply text is left out: servers quote addresses and message parts back.
        return _reply_outcome(exc.code, type(exc).__name__)
    except aiosmtplib.SMTPNotSupported:
        return http_outcome.failed("SMTP server lacks a required extension (STARTTLS or AUTH)")
    except (aiosmtplib.SMTPException, OSError) as exc:
        return http_outcome.transient(f"SMTP connection error: {type(exc).__name__}")
    return http_outcome.SUCCESS


def _reply_outcome(code: int, what: str) -> Outcome:
    error = f"SMTP {code}: {what}"
    if 400 <= code < 500:
        return http_outcome.transient(error)
    return http_outcome.failed(error)


def _is_address(value: str) -> bool:
    if "\r" in value or "\n" in value:
        return False
    _, address = parseaddr(value)
    local, at, domain = address.rpartition("@")
    return bool(local and at and "." in domain)


def _plain(order_ref: str, product: str, codes: list[dict[str, Any]]) -> str:
    zh = [f"您好，\n\n您购买的「{product}」卡密如下（订单 {order_ref}）：\n"]
    en = [f"Hello,\n\nHere are your codes for “{product}” (order {order_ref}):\n"]
    for number, code in enumerate(codes, start=1):
        value, password, expires = _fields(code)
        zh.append(f"{number}. 卡号：{value}")
        en.append(f"{number}. Code: {value}")
        if password:
            zh.append(f"   密码：{password}")
            en.append(f"   Password: {password}")
        if expires:
            zh.append(f"   有效期至：{expires}")
            en.append(f"   Valid until: {expires}")
    zh.append("\n请妥善保管，切勿转发或告知他人。")
    en.append("\nKeep them safe; do not forward or share them.")
    return "\n".join(zh) + "\n\n" + "-" * 40 + "\n\n" + "\n".join(en) + "\n"


def _html(order_ref: str, product: str, codes: list[dict[str, Any]]) -> str:
    rows = []
    for code in codes:
        value, password, expires = _fields(code)
        rows.append(
            "<tr>"
            f'<td style="{_CELL}"><code style="{_CODE}">{html.escape(value)}</code></td>'
            f'<td style="{_CELL}"><code style="{_CODE}">{html.escape(password or "—")}</code></td>'
            f'<td style="{_CELL}">{html.escape(expires or "—")}</td>'
            "</tr>"
        )
    name, ref = html.escape(product), html.escape(order_ref)
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
        '<body style="font-family:sans-serif;color:#222;max-width:640px;margin:auto;padding:12px">'
        f"<p>您好，您购买的「{name}」卡密如下（订单 {ref}）。<br>"
        f'<span lang="en">Here are your codes for “{name}” (order {ref}).</span></p>'
        '<table style="border-collapse:collapse;width:100%">'
        f'<tr><th style="{_CELL}">卡号 / Code</th><th style="{_CELL}">密码 / Password</th>'
        f'<th style="{_CELL}">有效期至 / Valid until</th></tr>'
        + "".join(rows)
        + "</table><p>请妥善保管，切勿转发或告知他人。<br>"
        '<span lang="en">Keep them safe; do not forward or share them.</span></p>'
        "</body></html>"
    )


_CELL = "border:1px solid #ccc;padding:6px;text-align:left"
_CODE = "font-size:16px;user-select:all"


def _fields(code: Mapping[str, Any]) -> tuple[str, str | None, str | None]:
    password = code.get("password")
    return str(code["code"]), None if password is None else str(password), _expiry(code)


def _expiry(code: Mapping[str, Any]) -> str | None:
    value = code.get("expiresAt")
    if value is None:
        return None
    moment = _parse_time(value) if isinstance(value, str) else value
    if isinstance(moment, datetime) and moment.tzinfo is not None:
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


def _parse_time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _inline(text: str) -> str:
    # Header values must stay on one line.
    return _WHITESPACE.sub(" ", text).strip()
