"""The buyer's redemption link page and its QR code, as pure rendering.

The route (``GET /r/{token}``) looks the link up, counts the view and picks the language;
these functions only turn what it found into a small self-contained HTML page: inline CSS,
no scripts and no external assets, every value escaped.
"""

from __future__ import annotations

import html
import io
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, Literal

import segno

Language = Literal["zh", "en"]
RefusalReason = Literal["expired", "used_up", "unknown"]

# The page carries secrets: nothing may store it, index it, or learn its URL from a Referer.
PAGE_HEADERS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Robots-Tag": "noindex, nofollow",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": (
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        ),
    }
)

QR_SCALE = 8
QR_BORDER = 4

_TEXT: Final[dict[Language, dict[str, str]]] = {
    "zh": {
        "html_lang": "zh-CN",
        "title": "您的卡密",
        "intro": "请妥善保管以下卡密，切勿截图分享或告知他人。",
        "code": "卡号",
        "password": "密码",
        "code_expires": "有效期至",
        "link_expires": "本页面有效期至",
        "views_left": "剩余可查看 {n} 次",
        "last_view": "这是最后一次查看，请立即保存卡密。",
        "refused_title": "无法查看",
        "expired": "此链接已过期。",
        "used_up": "此链接的查看次数已用完。",
        "unknown": "链接无效或不存在。",
        "refused_hint": "如需帮助，请联系您购买时的商家。",
    },
    "en": {
        "html_lang": "en",
        "title": "Your codes",
        "intro": "Keep these codes safe; do not share them or screenshots of them.",
        "code": "Code",
        "password": "Password",
        "code_expires": "Valid until",
        "link_expires": "This page expires",
        "views_left": "{n} views left",
        "last_view": "This was the last view: save your codes now.",
        "refused_title": "Not available",
        "expired": "This link has expired.",
        "used_up": "This link has no views left.",
        "unknown": "This link is invalid or does not exist.",
        "refused_hint": "For help, contact the shop you bought from.",
    },
}

_STYLE = (
    "*{box-sizing:border-box}"
    "body{margin:0;background:#f4f5f7;color:#1f2328;"
    "font:16px/1.5 -apple-system,'PingFang SC','Microsoft YaHei',system-ui,sans-serif}"
    "main{max-width:480px;margin:0 auto;padding:16px}"
    "h1{font-size:20px;margin:8px 0 4px}"
    "h2{font-size:16px;margin:0 0 12px;color:#57606a;font-weight:normal}"
    ".note{font-size:14px;color:#57606a}"
    "ol{list-style:none;padding:0;margin:16px 0}"
    "li{background:#fff;border-radius:12px;padding:12px 16px;margin-bottom:12px;"
    "box-shadow:0 1px 2px rgba(0,0,0,.08)}"
    ".label{display:block;font-size:12px;color:#57606a}"
    ".value{display:block;font:600 18px/1.4 ui-monospace,Menlo,Consolas,monospace;"
    "word-break:break-all;user-select:all;-webkit-user-select:all;"
    "background:#f6f8fa;border-radius:6px;padding:6px 8px;margin:2px 0 8px}"
    ".meta{font-size:14px;color:#57606a}"
    ".warn{color:#9a3412}"
)


def pick_language(accept_language: str | None) -> Language:
    """The language the browser prefers most between Chinese and English; Chinese by default."""
    best: tuple[float, Language] | None = None
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in ("zh", "en"):
            continue
        quality = _quality(params)
        # Among equal weights the earlier entry wins, as browsers list them in order.
        if quality > 0 and (best is None or quality > best[0]):
            best = (quality, "zh" if primary == "zh" else "en")
    return best[1] if best else "zh"


def render_link_page(
    codes: list[dict[str, Any]],
    product_name: str,
    expires_at: datetime,
    views_left: int,
    lang: str,
) -> str:
    """``codes`` as ``[{"code", "password", "expiresAt"}]``; ``views_left`` after this view."""
    text = _TEXT[_language(lang)]
    items = "".join(_code_item(code, text) for code in codes)
    views = (
        html.escape(text["views_left"].format(n=views_left))
        if views_left > 0
        else f'<span class="warn">{html.escape(text["last_view"])}</span>'
    )
    body = (
        f"<h1>{html.escape(text['title'])}</h1>"
        f"<h2>{html.escape(product_name)}</h2>"
        f'<p class="note">{html.escape(text["intro"])}</p>'
        f"<ol>{items}</ol>"
        f'<p class="meta">{html.escape(text["link_expires"])}: {_when(expires_at)}<br>{views}</p>'
    )
    return _page(text, text["title"], body)


def render_refusal(reason: RefusalReason, lang: str) -> str:
    text = _TEXT[_language(lang)]
    body = (
        f"<h1>{html.escape(text['refused_title'])}</h1>"
        f"<p>{html.escape(text[reason])}</p>"
        f'<p class="note">{html.escape(text["refused_hint"])}</p>'
    )
    return _page(text, text["refused_title"], body)


def qr_svg(url: str) -> str:
    """A standalone SVG document (with its xmlns, to be served as image/svg+xml)."""
    out = io.BytesIO()
    qr = segno.make(url, error="m")
    qr.save(out, kind="svg", scale=QR_SCALE, border=QR_BORDER, xmldecl=False, svgclass=None)
    return out.getvalue().decode()


def _page(text: Mapping[str, str], title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="{text["html_lang"]}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex, nofollow">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def _code_item(code: Mapping[str, Any], text: Mapping[str, str]) -> str:
    parts = [_field(text["code"], str(code["code"]))]
    if code.get("password"):
        parts.append(_field(text["password"], str(code["password"])))
    expires = code.get("expiresAt")
    if expires:
        parts.append(
            f'<span class="label">{html.escape(text["code_expires"])}: {_when(expires)}</span>'
        )
    return f"<li>{''.join(parts)}</li>"


def _field(label: str, value: str) -> str:
    return (
        f'<span class="label">{html.escape(label)}</span>'
        f'<code class="value">{html.escape(value)}</code>'
    )


def _when(value: object) -> str:
    moment = _parse_time(value) if isinstance(value, str) else value
    if isinstance(moment, datetime) and moment.tzinfo is not None:
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return html.escape(str(value))


def _parse_time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _language(lang: str) -> Language:
    return "en" if lang == "en" else "zh"


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip() == "q":
            try:
                return min(max(float(value), 0.0), 1.0)
            except ValueError:
                return 0.0
    return 1.0
