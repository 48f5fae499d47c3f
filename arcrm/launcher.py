"""Run arcrm on one machine: `python -m arcrm.launcher` (what `make run` does).

Prepares the database (migrate, demo data), then runs the web server and a
Celery worker with embedded beat side by side until Ctrl-C or SIGTERM, and
stops them cleanly (exit 0); killed outright, it takes them with it. The
settings come from the environment as usual: with nothing set, SQLite and the
filesystem broker under var/; with DATABASE_URL and REDIS_URL, PostgreSQL and
Redis.
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, TextIO

from arcrm.env import ConfigError, env_bool, env_int, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
# The users `manage.py seed_demo` creates (arcrm/demo.py DEMO_USERS); keep the
# two in step. Not imported: that would load Django into this small process.
DEMO_PASSWORD = "arcrm-demo"
# `manage.py seed_demo --check`'s exit code when the demo users are not in the
# database (0 when they are); keep the two in step.
DEMO_ABSENT = 3
DEMO_LOGINS = [
    ("manager", "manager: approves exceptions, owns the policy; also /admin/"),
    ("carla, colin, cora", "collectors, each with their own accounts"),
    ("viewer, sam", "read-only colleagues"),
]
# From starting gunicorn (after migrate and seed) to its first answer: seconds
# normally; a server still silent after this is stuck, not slow.
SERVE_TIMEOUT = 120.0
# After SIGTERM, gunicorn finishes the requests it is serving and the worker the
# task it is running; whatever is still alive after this is killed.
STOP_TIMEOUT = 20.0
POLL_INTERVAL = 0.2
# manage.py's exit code (SAID there) when it has said what is wrong in one
# line (a setting, the database): the launcher adds no line of its own.
STEP_SAID = 2

Children = dict[str, subprocess.Popen[bytes]]


class StopRequested(Exception):
    """Ctrl-C, SIGTERM or SIGHUP arrived: stop everything and exit 0."""


class LaunchError(Exception):
    """A step failed or a process died; the message says which."""


class StepSaid(Exception):
    """A step failed and said why itself, in one line."""


@dataclass(frozen=True)
class Config:
    host: str
    port: int
    debug: bool
    demo: bool


_stop_requested = False


def main() -> int:
    # The handler only sets a flag; the loops below check it. Raising from the
    # handler instead could fire half-way through starting a child and leave it
    # running without a record of it.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _request_stop)
    # What the environment asks for is checked before anything starts: a bad
    # value is one line and nothing done, not a half-prepared database.
    try:
        config = _config()
        _check_address(config.host, config.port)
    except (ConfigError, LaunchError) as error:
        _say(f"error: {error}", file=sys.stderr)
        return 2
    children: Children = {}
    code = 1
    try:
        _serve(children, config)
    except StopRequested:
        _say("stopping ...")
        code = 0
    except LaunchError as error:
        _say(f"error: {error}", file=sys.stderr)
    except StepSaid:
        code = 2
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        if not _stop(children):
            code = 1
    if code != 2:  # what went wrong is the one line above, as for a bad setting here
        _say("stopped." if code == 0 else "stopped, with errors (see above).")
    return code


def _config() -> Config:
    host = env_str("HOST", "127.0.0.1").strip("[]")
    if ":" in host:  # only an IPv6 address has colons
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(f"HOST takes an address or a host name without a port (the port goes in PORT); "
                              f"got {env_str('HOST')!r}") from None
    debug = env_bool("DEBUG", False)
    return Config(
        host=host,
        port=env_int("PORT", 8000, minimum=1, maximum=65535),
        debug=debug,
        # The demo users share a published password: seeded only for a demo
        # (DEBUG on, as `make run` has it, or DEMO=1), never by default on an
        # install that runs without DEBUG.
        demo=env_bool("DEMO", debug),
    )


def _serve(children: Children, config: Config) -> NoReturn:
    host, port, demo = config.host, config.port, config.demo
    _manage(children, "migrate", "--noinput")
    if demo:
        _manage(children, "seed_demo", "--if-empty")
    else:
        # Not seeded now, but perhaps by an earlier demo run on this database:
        # its logins still work and are said, not "No demo data".
        demo = _manage(children, "seed_demo", "--check", ok=(0, DEMO_ABSENT)) == 0
    if not config.debug:
        # Without DEBUG, WhiteNoise serves only collected files with hashed names.
        _manage(children, "collectstatic", "--noinput", "-v", "0")

    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    children["web server"] = _spawn(
        "-m", "gunicorn", "arcrm.wsgi", "--workers", "2", "--bind", bind, "--access-logfile", "-",
        # Unused here, and one per user account: a second server would take it over.
        "--no-control-socket",
    )
    # The schedule file's place (var/) comes from CELERY_BEAT_SCHEDULE_FILENAME.
    children["worker"] = _spawn(
        "-m", "celery", "-A", "arcrm", "worker", "-B", "--concurrency", "2", "-l", "info"
    )

    url = f"http://{_reachable(host)}:{port}/"
    _wait_until_answering(url + "login/", children)
    logins = "\n".join(f"    {names:<20} {role}" for names, role in DEMO_LOGINS)
    _say(
        f"running at {url}\n\n"
        + (f"  Demo logins, password {DEMO_PASSWORD!r}:\n{logins}\n\n" if demo else
           "  No demo data (DEBUG is off; DEMO=1 seeds it): sign in as a user made with\n"
           "  `manage.py createsuperuser`.\n\n")
        + "  Press Ctrl-C to stop.\n"
    )
    while True:
        _check(children)
        time.sleep(POLL_INTERVAL)


def _request_stop(signum: int, frame: object) -> None:
    global _stop_requested
    _stop_requested = True


def _check(children: Children) -> None:
    """Raise if a stop was asked for or a long-running child has died."""
    if _stop_requested:
        raise StopRequested
    for name, child in children.items():
        if (code := child.poll()) is not None:
            raise LaunchError(f"the {name} exited unexpectedly with code {code}")


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    # Each child leads a process group of its own: a Ctrl-C in the terminal then
    # reaches only this launcher, which stops the children one by one, and a
    # child that will not stop can be killed together with everything it started.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, *args], cwd=BASE_DIR, env=env, process_group=0,
        preexec_fn=_stop_with_launcher(os.getpid()),
    )


# prctl(2): the signal the kernel sends a process when the one that started it ends.
_PR_SET_PDEATHSIG = 1


def _stop_with_launcher(launcher_pid: int) -> Callable[[], None] | None:
    """For a child, on Linux: SIGTERM, its own clean stop, if the launcher ends
    without stopping it. A SIGKILL (a service manager out of patience, the
    out-of-memory killer) reaches no handler here, and the web server would
    keep the port and the worker its tasks, in process groups nothing stops."""
    if sys.platform != "linux":
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork: the child only calls it

    def in_child() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != launcher_pid:  # the launcher ended before the line above
            os.kill(os.getpid(), signal.SIGTERM)

    return in_child


def _manage(children: Children, *args: str, ok: tuple[int, ...] = (0,)) -> int:
    """Run a manage.py command to its end; its exit code, one of `ok`."""
    name = f"manage.py {' '.join(args)}"
    child = children[name] = _spawn("manage.py", *args)
    while (code := child.poll()) is None:
        if _stop_requested:
            raise StopRequested
        time.sleep(POLL_INTERVAL)
    del children[name]
    if code == STEP_SAID and code not in ok:
        raise StepSaid
    if code not in ok:
        raise LaunchError(f"{name} failed with exit code {code}")
    return code


def _check_address(host: str, port: int) -> None:
    """Refuse, before anything starts, an address the web server could not
    bind: a port another server listens on (the wait for the first answer
    would take that server's for ours), or a host that is not this machine."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind((host, port))
        except OSError as error:
            raise LaunchError(_bind_refusal(host, port, error)) from None


def _bind_refusal(host: str, port: int, error: OSError) -> str:
    if isinstance(error, socket.gaierror) or error.errno == errno.EADDRNOTAVAIL:
        return (f"HOST {host} is not an address of this machine ({error.strerror}); e.g. HOST=127.0.0.1, "
                f"or HOST=0.0.0.0 for every address")
    where = f"port {port} of {host or 'every address'}"
    if error.errno == errno.EADDRINUSE:
        return (f"cannot serve on {where}: {error.strerror}; stop what serves there or choose another "
                f"port, e.g. PORT=8080 make run")
    if error.errno == errno.EACCES:
        return (f"cannot serve on {where}: {error.strerror}; ports below 1024 need root: choose another, "
                f"e.g. PORT=8080 make run")
    return f"cannot serve on {where}: {error.strerror}"


def _reachable(host: str) -> str:
    """How to reach, from this machine, a server bound to `host` (in a URL)."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"[{host}]" if ":" in host else host


def _wait_until_answering(url: str, children: Children) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    deadline = time.monotonic() + SERVE_TIMEOUT
    while time.monotonic() < deadline:
        _check(children)
        try:
            with opener.open(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # any HTTP answer means the server is up
        except OSError:
            time.sleep(POLL_INTERVAL)
    raise LaunchError(f"the web server did not answer at {url} within {SERVE_TIMEOUT:.0f} s")


def _stop(children: Children) -> bool:
    """Terminate every child, kill what outlives STOP_TIMEOUT; True if all ended cleanly."""
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    clean = True
    for name, child in children.items():
        try:
            code = child.wait(timeout=max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            _say(f"the {name} did not stop within {STOP_TIMEOUT:.0f} s; killing it", file=sys.stderr)
            # Not yet reaped, so the group id is still this child's.
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            clean = False
            continue
        # 0: stopped by its own shutdown; -SIGTERM: a one-off step cut short.
        if code not in (0, -signal.SIGTERM):
            _say(f"the {name} ended with exit code {code}", file=sys.stderr)
            clean = False
    return clean


def _say(message: str, file: TextIO | None = None) -> None:
    print(f"\narcrm: {message}", file=file or sys.stdout, flush=True)


if __name__ == "__main__":
    sys.exit(main())
