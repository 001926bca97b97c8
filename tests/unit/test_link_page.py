"""The buyer's link page, its refusals and its QR code, rendered without I/O."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
import segno

from resolvers.link_page import (
    PAGE_HEADERS,
    QR_BORDER,
    QR_SCALE,
    pick_language,
    qr_svg,
    render_link_page,
    render_refusal,
)

EXPIRES = datetime(2025, 3, 8, 4, 30, tzinfo=UTC)
CODES: list[dict[str, Any]] = [
    {"code": "GIFT-AAAA-1111", "password": "9876", "expiresAt": "2025-12-31T00:00:00+00:00"},
    {"code": "GIFT-BBBB-2222", "password": None, "expiresAt": None},
]
HOSTILE = "<script>alert('x')</script>"


def test_page_shows_each_code_and_password_in_copyable_blocks() -> None:
    page = render_link_page(CODES, "Q币 10元", EXPIRES, 2, "zh")

    values = re.findall(r'<code class="value">([^<]*)</code>', page)
    assert values == ["GIFT-AAAA-1111", "9876", "GIFT-BBBB-2222"]
    assert "user-select:all" in page
    assert "有效期至: 2025-12-31 00:00 UTC" in page


def test_chinese_page() -> None:
    page = render_link_page(CODES, "Q币 10元", EXPIRES, 2, "zh")

    assert page.startswith('<!doctype html><html lang="zh-CN">')
    assert "<title>您的卡密</title>" in page
    assert "<h2>Q币 10元</h2>" in page
    assert '<span class="label">卡号</span>' in page
    assert '<span class="label">密码</span>' in page
    assert "本页面有效期至: 2025-03-08 04:30 UTC<br>剩余可查看 2 次" in page


def test_english_page() -> None:
    page = render_link_page(CODES, "Q coins", EXPIRES, 1, "en")

    assert page.startswith('<!doctype html><html lang="en">')
    assert "<title>Your codes</title>" in page
    assert '<span class="label">Code</span>' in page
    assert '<span class="label">Password</span>' in page
    assert "This page expires: 2025-03-08 04:30 UTC<br>1 views left" in page
    assert "卡号" not in page


def test_the_last_view_says_so() -> None:
    assert "这是最后一次查看" in render_link_page(CODES, "Card", EXPIRES, 0, "zh")
    assert "This was the last view" in render_link_page(CODES, "Card", EXPIRES, 0, "en")


def test_hostile_text_is_escaped_everywhere() -> None:
    codes: list[dict[str, Any]] = [
        {"code": HOSTILE, "password": '"><img src=x>', "expiresAt": "<i>soon</i>"}
    ]

    page = render_link_page(codes, HOSTILE, EXPIRES, 1, "en")

    assert "<script" not in page
    assert "<img" not in page
    assert "<i>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img src=x&gt;" in page


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_page_is_mobile_friendly_and_self_contained(lang: str) -> None:
    page = render_link_page(CODES, "Card", EXPIRES, 1, lang)
    refusal = render_refusal("expired", lang)

    for html in (page, refusal):
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
        assert '<meta name="referrer" content="no-referrer">' in html
        assert "<style>" in html
        # No scripts, stylesheets, images, fonts or links to fetch from anywhere.
        assert not re.search(r"<script|<link|<img|src=|href=|url\(|@import|https?:", html)


@pytest.mark.parametrize(
    ("reason", "lang", "message"),
    [
        ("expired", "zh", "此链接已过期。"),
        ("used_up", "zh", "此链接的查看次数已用完。"),
        ("unknown", "zh", "链接无效或不存在。"),
        ("expired", "en", "This link has expired."),
        ("used_up", "en", "This link has no views left."),
        ("unknown", "en", "This link is invalid or does not exist."),
    ],
)
def test_refusal_pages_say_why_and_show_no_codes(reason: str, lang: str, message: str) -> None:
    page = render_refusal(reason, lang)  # type: ignore[arg-type]

    assert f"<p>{message}</p>" in page
    assert "<ol>" not in page
    assert 'class="value"' not in page
    # The same look as the code page
    style = re.compile(r"<style>.*</style>")
    assert style.findall(page) == style.findall(render_link_page(CODES, "x", EXPIRES, 1, lang))


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        (None, "zh"),
        ("", "zh"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        ("en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        ("fr-FR,fr;q=0.9,en;q=0.5", "en"),
        ("fr-FR,de", "zh"),
        ("en;q=0.3, zh-TW;q=0.7", "zh"),
        ("zh;q=0, en", "en"),
        ("en;q=abc, zh;q=0.1", "zh"),
        ("EN-gb", "en"),
        ("en, zh", "en"),
    ],
)
def test_pick_language(header: str | None, lang: str) -> None:
    assert pick_language(header) == lang


def _svg_modules(svg: str) -> set[tuple[int, int]]:
    """Read the dark modules back out of the path segno draws: one ``h`` run per row span."""
    path = re.search(r' d="([^"]+)"', svg)
    assert path
    dark: set[tuple[int, int]] = set()
    x = y = 0.0
    for op, a, b in re.findall(r"([Mmh])(-?[\d.]+)(?: (-?[\d.]+))?", path.group(1)):
        if op == "M":
            x, y = float(a), float(b)
        elif op == "m":
            x, y = x + float(a), y + float(b)
        else:
            dark.update((int(y), int(x) + i) for i in range(int(float(a))))
            x += float(a)
    return dark


def test_qr_svg_draws_the_matrix_of_the_url_at_error_level_m() -> None:
    url = "https://quanyi.example/r/AbCdEf0123456789_-xyz"

    svg = qr_svg(url)

    # Then it is a standalone SVG document sized for a phone screen
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    assert svg.endswith("</svg>\n") or svg.endswith("</svg>")
    reference = segno.make(url, error="m")
    side = (reference.symbol_size(scale=1, border=QR_BORDER))[0]
    assert f'width="{side * QR_SCALE}" height="{side * QR_SCALE}"' in svg
    assert reference.error in ("M", "Q", "H")
    # And the modules it draws are exactly segno's matrix for the URL
    expected = {
        (row + QR_BORDER, col + QR_BORDER)
        for row, line in enumerate(reference.matrix)
        for col, bit in enumerate(line)
        if bit
    }
    assert _svg_modules(svg) == expected
    # And another URL draws something else
    assert _svg_modules(qr_svg(url + "x")) != expected


def test_page_headers_forbid_caching_referrers_and_indexing() -> None:
    assert PAGE_HEADERS["Cache-Control"] == "no-store"
    assert PAGE_HEADERS["Referrer-Policy"] == "no-referrer"
    assert PAGE_HEADERS["X-Robots-Tag"].startswith("noindex")
    assert "script-src" not in PAGE_HEADERS["Content-Security-Policy"]
    with pytest.raises(TypeError):
        PAGE_HEADERS["Cache-Control"] = "public"  # type: ignore[index]
