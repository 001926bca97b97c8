"""The supplier simulator as tests run it: ``python -m supplier_sim`` in its own process
on a local port, with signed calls to its test hooks (/stats, /admin/catalog)."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from integrations import supplier_signing

REPO = Path(__file__).resolve().parents[1]
SECRET = b"simulator-secret-0123456789abcdef"
START_TIMEOUT = 15.0


@dataclass
class Simulator:
    url: str
    port: int
    process: subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"simulator exited with {process.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    pytest.fail(f"simulator did not listen within {START_TIMEOUT} s:\n{log.read_text()}")


@contextlib.contextmanager
def simulator(log_dir: Path, *options: str, port: int | None = None) -> Iterator[Simulator]:
    """A running simulator, stopped when the block ends (``port`` to restart one)."""
    port = port or free_port()
    log = log_dir / f"supplier-sim-{port}.log"
    with log.open("ab") as out:
        # cwd is the repository, so `-m supplier_sim` runs this checkout's simulator.
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "supplier_sim",
                *("--port", str(port), "--secret", SECRET.decode()),
                *options,
            ],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_listening(port, process, log)
            yield Simulator(f"http://127.0.0.1:{port}", port, process)
        finally:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def admin(sim: Simulator, method: str, path: str, payload: Any = None) -> Any:
    """A signed call to the simulator's test hooks, with its answer's signature checked."""
    body = b"" if payload is None else json.dumps(payload).encode()
    headers = supplier_signing.sign(SECRET, method, path, body, int(time.time()))
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.request(method, sim.url + path, content=body, headers=headers)
    assert supplier_signing.verify(
        SECRET, supplier_signing.RESPONSE, path, response.content, response.headers, time.time()
    )
    assert response.status_code == 200, response.text
    return response.json()
