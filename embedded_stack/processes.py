"""The embedded stack's processes: SecantusDB started and stopped by PID, ports, liveness.

Every process is started inside :func:`~embedded_stack.signals.signals_deferred` and
recorded at once, so a Ctrl-C never leaves one nobody stops; stopping is graceful first
(SIGINT, then SIGTERM) and SIGKILL only as the last resort.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import LocalStackError
from .signals import signals_deferred

if TYPE_CHECKING:
    from .tls import TlsFiles

__all__ = ["SecantusServer", "check_port", "free_port", "pid_alive", "port_in_use"]

_log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """Return a port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """Whether a server could not bind ``host:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As a server binds: connections of a previous run in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` of a process's log, for an error message."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(empty log)"


def check_port(port: int, what: str) -> None:
    """Refuse a port outside 1-65535 (``what`` names it in the message)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise LocalStackError(f"{what} {port!r} is out of range; give a port from 1 to 65535, or leave it out")


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not count: it holds no port and no file)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    status = Path(f"/proc/{pid}/status")
    try:
        return "State:\tZ" not in status.read_text()
    except OSError:
        return True


class SecantusServer:
    """One SecantusDB process on loopback, started and stopped by PID.

    Args:
        data_dir: its storage directory (kept across restarts).
        log_path: where its output goes.
        host: the address to bind.
        port: the port; ``None`` picks a free one.
        sync_on_commit: pass ``--sync-on-commit``: a write is acknowledged only
            once it is on disk, so a SIGKILL loses none (the default).
        tls: serve TLS only, with this certificate and key (made before :meth:`start`).
    """

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        sync_on_commit: bool = True,
        tls: TlsFiles | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.tls = tls
        self.log_path = log_path
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.sync_on_commit = sync_on_commit
        self.auth = False
        self._process: subprocess.Popen[bytes] | None = None
        self.started_pids: list[int] = []
        """Every process this server object started, in order (for leak checks)."""

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, *, auth: bool, timeout: float = 30.0) -> None:
        """Start the server and wait until it accepts connections.

        Raises:
            LocalStackError: SecantusDB is missing, the port is taken, or the
                server exited or stayed silent; the message shows its log tail.
        """
        if self.running:
            raise LocalStackError(f"SecantusDB: already running (pid {self.pid})")
        try:
            import secantus  # noqa: F401
        except ImportError as exc:
            raise LocalStackError(
                "SecantusDB: the package is not installed; run `pip install 'secretswitch[local]'`"
            ) from exc
        if port_in_use(self.host, self.port):
            raise LocalStackError(
                f"SecantusDB: port {self.port} on {self.host} is already in use; "
                "choose another port or leave it out to pick a free one"
            )
        command = [
            sys.executable, "-m", "secantus",
            "--host", self.host, "--port", str(self.port),
            "--storage-path", str(self.data_dir),
            "--log-level", "WARNING",
        ]  # fmt: skip
        if auth:
            command.append("--auth")
        if self.sync_on_commit:
            command.append("--sync-on-commit")
        if self.tls is not None:
            command += ["--tls-cert-file", str(self.tls.cert_file), "--tls-key-file", str(self.tls.key_file)]
        # Started and recorded in one piece: a Ctrl-C in between would leave a process nobody stops.
        with signals_deferred(), open(self.log_path, "ab") as log:
            # A session of its own: Ctrl-C reaches us, and we stop it in order.
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
            self.started_pids.append(self._process.pid)
            self.auth = auth
        _log.info("SecantusDB starting: pid %s, %s:%s, auth=%s", self.pid, self.host, self.port, auth)
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise LocalStackError(
                    f"SecantusDB: exited with code {code} on start ({self.host}:{self.port}); "
                    f"last lines of {self.log_path}:\n{log_tail(self.log_path)}"
                )
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise LocalStackError(
                    f"SecantusDB: no answer on {self.host}:{self.port} after {timeout:.0f} s; "
                    f"last lines of {self.log_path}:\n{log_tail(self.log_path)}"
                )
            time.sleep(0.02)

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGINT, then SIGTERM), SIGKILL only as the last resort; never cut short by a signal."""
        with signals_deferred():
            self._stop(timeout)

    def kill(self) -> None:
        """``kill -9`` the server, as a crash would (the data directory is kept)."""
        with signals_deferred():
            process, self._process = self._process, None
            if process is None:
                return
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait(timeout=30)
        _log.info("SecantusDB killed: pid %s", process.pid)

    def _stop(self, timeout: float) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
            if sig == signal.SIGINT:
                self._wake_accept_loop()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=timeout / 2 if sig != signal.SIGKILL else timeout)
            if sig == signal.SIGKILL:
                _log.warning("SecantusDB pid %s needed SIGKILL; its last writes may be lost", process.pid)
        _log.info("SecantusDB stopped: pid %s, exit %s", process.pid, process.returncode)

    def _wake_accept_loop(self) -> None:
        # SecantusDB's accept thread stays blocked in accept() after its
        # listening socket is closed, and its shutdown waits 2 s for it; one
        # connection wakes it, and the stop takes ~0.3 s instead of ~2.1 s.
        with contextlib.suppress(OSError):
            socket.create_connection((self.host, self.port), timeout=0.5).close()

    def restart(self, *, auth: bool | None = None) -> None:
        """Stop and start again on the same port and data directory."""
        self.stop()
        self.start(auth=self.auth if auth is None else auth)
