"""Helpers for tests that start real processes: servers, workers, the launcher."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

REPO_DIR = Path(__file__).resolve().parents[2]
T = TypeVar("T")


@dataclass
class Spawned:
    """A process started in a session of its own, with its output in a file.

    The session groups everything it starts (gunicorn workers, Celery pool
    processes, ...), so the tests can tell whether anything outlived it.
    """

    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def session_pids(self) -> list[int]:
        """Processes of this process's session that are still running.

        Zombies do not count: they have exited, and an orphan's is reaped
        whenever PID 1 gets round to it.
        """
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:
                continue  # exited while we looked
            # After the command name: state, ppid, pgrp, session, ...
            if int(fields[3]) == self.pid and fields[0] != "Z":
                pids.append(int(stat.parent.name))
        return pids

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal the process alone and wait; kill its whole session if it hangs."""
        if self.popen.poll() is None:
            self.popen.send_signal(signum)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_session()
            raise

    def kill_session(self) -> None:
        for pid in self.session_pids():
            with contextlib.suppress(ProcessLookupError):  # gone meanwhile
                os.kill(pid, signal.SIGKILL)
        if self.popen.poll() is None:
            self.popen.wait(timeout=10)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Spawned]]:
    """Start `python <args>` from the repository; whatever is left of it is killed at teardown."""
    started: list[Spawned] = []

    def start(*args: str, env: dict[str, str], name: str) -> Spawned:
        log_path = tmp_path / f"{name}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                [sys.executable, *args],
                cwd=REPO_DIR,
                env={**env, "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = Spawned(popen, log_path)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.popen.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):  # stop() killed the session
                process.stop(timeout=20)
        process.kill_session()


@pytest.fixture
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(condition: Callable[[], T], *, timeout: float, message: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:.0f} s: {message}")
        time.sleep(0.5)


@pytest.fixture
def wait_for() -> Callable[..., object]:
    """wait_for(condition, timeout=, message=): poll until `condition()` is truthy, else fail."""
    return _wait_for
