"""The demo's supplier simulator: a process of its own, started by `quanyi serve --demo`."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from demo import supplier_simulator


def test_a_secret_that_begins_with_a_dash_still_starts_the_simulator(tmp_path: Path) -> None:
    # Given a saved demo supplier whose secret begins with "-" (token_urlsafe draws one
    # such secret in 64)
    secret = "-" + "a" * 42
    (tmp_path / "demo-supplier.json").write_text(json.dumps({"port": 0, "secret": secret}))

    # When the demo starts its simulator
    with supplier_simulator(tmp_path) as supplier:
        # Then it runs, under that secret
        assert supplier.secret == secret
        assert httpx.get(supplier.url + "/catalog", timeout=5).status_code < 500
