"""SMS delivery through a generic HTTP provider: POST JSON ``{to, text, sender}``.

Vendor APIs with their own shapes sit behind a relay that speaks this one.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from integrations import http_outcome
from integrations.http_outcome import Outcome

PLACEHOLDERS = frozenset({"product", "codes", "order"})
_PHONE = re.compile(r"\+[1-9]\d{6,14}|1[3-9]\d{9}")
_PHONE_PUNCTUATION = re.compile(r"[\s\-().]")


@dataclass(frozen=True, slots=True)
class SmsSettings:
    url: str
    api_key: str | None = field(repr=False)
    template: str
    sender: str | None
    timeout: float

    def __post_init__(self) -> None:
        check_template(self.template)


def check_template(template: str) -> None:
    """Allow only ``{product}``, ``{codes}`` and ``{order}``.

    str.format would otherwise reach attributes and items (``{product.__class__}``) of what
    it is given. Raises ValueError.
    """
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"SMS template is malformed: {exc}") from None
    for _, name, spec, _ in fields:
        if name is None:
            continue
        if name not in PLACEHOLDERS or (spec and "{" in spec):
            raise ValueError(
                f"SMS template may use only {{product}}, {{codes}}, {{order}}: {name!r}"
            )


def render_sms(
    template: str, product_name: str, codes: list[dict[str, Any]], order_ref: str
) -> str:
    check_template(template)
    return template.format(product=product_name, codes=_codes_text(codes), order=order_ref)


def normalise_phone(phone: str) -> str | None:
    """The number without spaces and dashes when it looks like E.164 or a CN mobile, else None."""
    compact = _PHONE_PUNCTUATION.sub("", phone)
    return compact if _PHONE.fullmatch(compact) else None


async def send_sms(
    client: httpx.AsyncClient,
    settings: SmsSettings,
    phone: str,
    text: str,
    *,
    allow_private: bool,
) -> Outcome:
    to = normalise_phone(phone)
    if to is None:
        return http_outcome.failed("invalid phone number")
    body: dict[str, str] = {"to": to, "text": text}
    if settings.sender:
        body["sender"] = settings.sender
    headers = {"content-type": "application/json"}
    if settings.api_key:
        headers["authorization"] = f"Bearer {settings.api_key}"
    return await http_outcome.post(
        client,
        settings.url,
        content=json.dumps(body, ensure_ascii=False).encode(),
        headers=headers,
        allow_private=allow_private,
        read_body=False,
        request_timeout=settings.timeout,
    )


def _codes_text(codes: list[dict[str, Any]]) -> str:
    return "; ".join(_code_text(code) for code in codes)


def _code_text(code: Mapping[str, Any]) -> str:
    password = code.get("password")
    return f"{code['code']} / {password}" if password else str(code["code"])
