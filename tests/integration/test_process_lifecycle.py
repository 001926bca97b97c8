"""The real `quanyi` command with its embedded PostgreSQL and Valkey, as an operator runs it.

Each test starts whole server processes in a short data directory of its own (Unix socket
paths are limited to 107 bytes), talks to them over HTTP, stops them with signals, and checks
that no database or Valkey process outlives them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

QUANYI = str(Path(sys.executable).parent / "quanyi")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0

LOGIN = """
mutation($email: String!, $password: String!) {
  login(input: {email: $email, password: $password}) { token userErrors { code } }
}
"""
CREATE_CHANNEL = """
mutation($name: String!) {
  createChannel(input: {name: $name}) { channel { id name } userErrors { code message } }
}
"""
CHILDREN = "{ channel { children(first: 100) { edges { node { id name } } } } }"

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    """The caller's environment without any server URL, so the embedded servers are used."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL") and not k.startswith("QUANYI_")
    }
    env["QUANYI_LOG_LEVEL"] = "WARNING"
    return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _inside(path: str | None, directory: Path) -> bool:
    return path is not None and (path == str(directory) or path.startswith(f"{directory}/"))


def _leftovers(data_dir: Path) -> list[psutil.Process]:
    """postgres and valkey-server processes that belong to ``data_dir``.

    The postmaster names its data directory on its command line; every postgres process
    (backends, checkpointer, ...) runs with its working directory there, and so does
    valkey-server, which is also started with the config file from that directory.
    """
    found = []
    for proc in psutil.process_iter(["name", "cmdline", "cwd"]):
        name = proc.info["name"] or ""
        if not ("postgres" in name or "valkey" in name):
            continue
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(data_dir) in cmdline or _inside(proc.info["cwd"], data_dir):
            found.append(proc)
    return found


def _postmaster_pid(data_dir: Path) -> int | None:
    """The pid PostgreSQL recorded for itself; None when it is not running."""
    try:
        return int((data_dir / "pg" / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def _describe(procs: list[psutil.Process]) -> list[str]:
    return [
        f"{p.pid} {' '.join(p.info['cmdline'] or []).strip()} (cwd {p.info['cwd']})" for p in procs
    ]


def _wait_gone(data_dir: Path, timeout: float = 5.0) -> list[psutil.Process]:
    """Leftover processes once shut-down children have had ``timeout`` to exit."""
    deadline = time.monotonic() + timeout
    while (left := _leftovers(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _reap(data_dir: Path) -> None:
    """Kill whatever a failed test left behind in ``data_dir``."""
    procs = _leftovers(data_dir)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(procs, timeout=10)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="qy", dir="/tmp"))
    try:
        yield path
    finally:
        _reap(path)
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    url: str
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def gql(self, query: str, variables: dict[str, Any] | None = None, token: str = "") -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx.post(
            self.url + "/graphql",
            json={"query": query, "variables": variables or {}},
            headers=headers,
            timeout=30,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert not body.get("errors"), body
        return body["data"]


@contextlib.contextmanager
def serving(data_dir: Path, logs: Path, *extra: str, reap: bool = True) -> Iterator[Running]:
    """`quanyi serve` in ``data_dir``, ready; killed (with its servers, unless ``reap`` is
    false: a test that kills the server itself may want its PostgreSQL adopted) after."""
    port = _free_port()
    logs.mkdir(parents=True, exist_ok=True)
    stdout, stderr = logs / f"serve-{port}.out", logs / f"serve-{port}.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(
            [QUANYI, "serve", "--data-dir", str(data_dir), "--port", str(port), *extra],
            env=_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    running = Running(proc, f"http://127.0.0.1:{port}", stdout, stderr)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert proc.poll() is None, f"serve exited {proc.returncode}:\n{running.output()}"
            assert time.monotonic() < deadline, f"not ready in time:\n{running.output()}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(running.url + "/readyz", timeout=2).status_code == 200:
                    break
            time.sleep(0.1)
        yield running
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if reap:
            _reap(data_dir)


def _stop(running: Running, sig: signal.Signals, data_dir: Path) -> None:
    """Send ``sig``; the process must exit 0 in time and take its servers with it."""
    # The leftover check must see the embedded servers while they run, or it proves nothing.
    kinds = {"valkey" if "valkey" in p.info["name"] else "postgres" for p in _leftovers(data_dir)}
    assert kinds == {"postgres", "valkey"}
    started = time.monotonic()
    running.proc.send_signal(sig)
    try:
        code = running.proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {STOP_TIMEOUT}s after {sig.name}:\n{running.output()}")
    assert code == 0, f"exit code {code} after {sig.name}:\n{running.output()}"
    assert time.monotonic() - started < STOP_TIMEOUT
    left = _wait_gone(data_dir)
    assert left == [], f"left running after {sig.name}: {_describe(left)}"


def _login(running: Running, email: str, password: str) -> str:
    login = running.gql(LOGIN, {"email": email, "password": password})["login"]
    assert login["userErrors"] == []
    token: str = login["token"]
    assert token
    return token


def test_serve_survives_restarts_and_stops_cleanly(data_dir: Path, tmp_path: Path) -> None:
    # Given `quanyi serve` with embedded servers in a fresh data directory
    with serving(data_dir, tmp_path) as first:
        postmaster = _postmaster_pid(data_dir)
        assert postmaster is not None
        assert psutil.pid_exists(postmaster)

        # When the platform owner is created while it runs
        admin = subprocess.run(
            [
                *(QUANYI, "create-admin", "--data-dir", str(data_dir)),
                *("--email", "a@b.cd", "--password", "secret123"),
            ],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert admin.returncode == 0, admin.stderr
        assert "a@b.cd" in admin.stdout

        # Then create-admin adopted the running PostgreSQL and left it running
        assert _postmaster_pid(data_dir) == postmaster
        assert psutil.pid_exists(postmaster)
        assert httpx.get(first.url + "/readyz", timeout=5).status_code == 200

        # And the owner logs in over HTTP and creates a channel
        token = _login(first, "a@b.cd", "secret123")
        created = first.gql(CREATE_CHANNEL, {"name": "Survivor"}, token)["createChannel"]
        assert created["userErrors"] == []
        channel = created["channel"]

        # When the server is sent SIGTERM
        # Then it exits 0 in time and no postgres or valkey-server of its data dir is left
        _stop(first, signal.SIGTERM, data_dir)

    # When it is started again on the same data directory
    with serving(data_dir, tmp_path) as second:
        # Then the owner can still log in and the channel is still there
        token = _login(second, "a@b.cd", "secret123")
        children = second.gql(CHILDREN, token=token)["channel"]["children"]["edges"]
        assert [e["node"] for e in children] == [channel]

        # When it is stopped with SIGINT (Ctrl-C)
        # Then it exits 0 in time and leaves nothing running either
        _stop(second, signal.SIGINT, data_dir)


_OWNER_LOGIN = re.compile(r"Log in as the platform owner: (\S+) / (\S+)")
_KEY_LINE = re.compile(r"^\s+(.+) \(level (\d+)\): (\S+)\s+key (qk_\S+)\s*$", re.MULTILINE)


def test_demo_prints_a_working_login_and_keys(data_dir: Path, tmp_path: Path) -> None:
    # Given `quanyi serve --demo` on a fresh data directory
    with serving(data_dir, tmp_path, "--demo") as demo:
        printed = demo.stdout.read_text()

        # Then it printed the owner's login and one API key per demo channel
        owner = _OWNER_LOGIN.search(printed)
        assert owner, printed
        keys = _KEY_LINE.findall(printed)
        assert len(keys) >= 2, printed
        assert len({key for *_, key in keys}) == len(keys)

        # And the printed login works
        assert _login(demo, owner[1], owner[2])

        # And a printed key of a channel below the platform acts for that channel
        name, level, _email, key = next(k for k in keys if k[1] != "0")
        viewer = demo.gql("{ viewer { channel { name level } } }", token=key)["viewer"]
        assert viewer["channel"] == {"name": name, "level": int(level)}

        # And so does the platform's own key
        name, level, _email, key = next(k for k in keys if k[1] == "0")
        viewer = demo.gql("{ viewer { channel { name level } } }", token=key)["viewer"]
        assert viewer["channel"] == {"name": name, "level": 0}

        _stop(demo, signal.SIGTERM, data_dir)


_DEMO_ORDER = re.compile(
    r'^\s+(mutation \{ placeOrder\(input: \{idempotencyKey: "first-order".*)$', re.M
)


def _thread_cpus(pid: int) -> dict[int, frozenset[int]]:
    """The CPUs each thread of ``pid`` may run on."""
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            found[int(tid)] = frozenset(os.sched_getaffinity(int(tid)))
    return found


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="pinning is Linux's, and needs a second CPU to tell",
)
def test_serve_on_one_cpu_runs_its_threads_there_and_the_rest_anywhere(
    data_dir: Path, tmp_path: Path
) -> None:
    everywhere = frozenset(os.sched_getaffinity(0))
    cpu = max(everywhere)

    # Given `quanyi serve --demo --cpu N`
    with serving(data_dir, tmp_path, "--demo", "--cpu", str(cpu)) as demo:
        printed = demo.stdout.read_text()
        pid = demo.proc.pid
        before = _thread_cpus(pid)

        # When a store buys a code (its pool's actor starts) and the owner logs in (the
        # password is hashed on a worker thread)
        key = next(k for name, _level, _email, k in _KEY_LINE.findall(printed) if "Pudong" in name)
        order_line = _DEMO_ORDER.search(printed)
        assert order_line, printed
        placed = demo.gql(order_line[1], token=key)["placeOrder"]
        assert placed["userErrors"] == []
        assert placed["order"]["status"] == "PAID"
        owner = _OWNER_LOGIN.search(printed)
        assert owner, printed
        assert _login(demo, owner[1], owner[2])
        after = _thread_cpus(pid)

        # Then the event loop's thread, and the threads the order started, run on that CPU
        assert before[pid] == after[pid] == {cpu}
        pinned = [tid for tid, cpus in after.items() if cpus == {cpu}]
        assert set(pinned) - set(before), "the order started no thread on the CPU"
        # And the thread that hashed the password, and nothing else, may run anywhere
        assert {cpus for tid, cpus in after.items() if tid not in pinned} == {everywhere}
        # And the embedded PostgreSQL and Valkey keep every CPU
        helpers = _leftovers(data_dir)
        assert {"postgres", "valkey"} <= {
            "valkey" if "valkey" in p.info["name"] else "postgres" for p in helpers
        }
        assert {frozenset(p.cpu_affinity()) for p in helpers} == {everywhere}

        _stop(demo, signal.SIGTERM, data_dir)


def test_serve_refuses_a_cpu_it_may_not_run_on_before_starting_anything(
    data_dir: Path,
) -> None:
    # When `quanyi serve` is asked to run on a CPU this machine does not give it
    done = subprocess.run(
        [QUANYI, "serve", "--data-dir", str(data_dir), "--port", "0", "--cpu", "4096"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # Then it says so in one line and exits 2, with nothing started
    assert done.returncode == 2
    assert "error: " in done.stderr
    assert "CPU 4096" in done.stderr
    assert "Traceback" not in done.stderr
    assert _leftovers(data_dir) == []
    assert not (data_dir / "pg").exists()
