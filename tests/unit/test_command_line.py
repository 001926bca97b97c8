"""The `quanyi` command's answer to settings it cannot use: one line each, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from server import main


def test_a_setting_out_of_range_is_named_with_its_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a pool size of none
    monkeypatch.setenv("QUANYI_DB_POOL_SIZE", "0")

    # When the server is started
    code = main(["serve", "--data-dir", str(tmp_path)])

    # Then it names the variable and what is wrong, exits 2, and started nothing
    err = capsys.readouterr().err
    assert code == 2
    assert err == "error: QUANYI_DB_POOL_SIZE: Input should be greater than or equal to 1\n"
    assert list(tmp_path.iterdir()) == []


def test_every_bad_setting_is_told_at_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QUANYI_LOGIN_ATTEMPTS", "many")
    monkeypatch.setenv("QUANYI_MAX_PAGE_SIZE", "0")

    code = main(["migrate", "--data-dir", str(tmp_path)])

    assert code == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "error: QUANYI_MAX_PAGE_SIZE: Input should be greater than or equal to 1",
        "error: QUANYI_LOGIN_ATTEMPTS: Input should be a valid integer,"
        " unable to parse string as an integer",
    ]


def test_a_flag_out_of_range_is_refused_the_same_way(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["serve", "--cpu", "-1", "--data-dir", str(tmp_path)])

    assert code == 2
    assert capsys.readouterr().err == (
        "error: QUANYI_CPU: Input should be greater than or equal to 0\n"
    )
