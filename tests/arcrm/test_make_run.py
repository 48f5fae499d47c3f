"""`make run` end to end: the launcher on the embedded defaults (SQLite, filesystem
broker), a real login over HTTP, and a clean stop on Ctrl-C."""

from __future__ import annotations

import html
import http.cookiejar
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from arcrm import launcher
from tests.arcrm.conftest import REPO_DIR, Spawned

pytestmark = pytest.mark.slow

# Migrations and the demo seed on a cold SQLite file, then gunicorn and Celery:
# about 50 s on a quiet machine, but 140-180 s while other work shares its two
# cores. A limit for a launcher that hangs, not a speed target.
START_TIMEOUT = 300
STOP_TIMEOUT = 60


def _status(opener: urllib.request.OpenerDirector, url: str) -> int | None:
    try:
        with opener.open(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None  # not listening yet


def test_make_run_serves_the_demo_and_stops_cleanly_on_ctrl_c(
    spawn, free_port, wait_for, tmp_path
):
    var_dir = tmp_path / "var"
    env = {
        key: value
        for key, value in os.environ.items()
        # Nothing set, as on a fresh laptop: no server URLs, no secret key.
        if key not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SECRET_KEY",
                       "STATIC_ROOT", "MEDIA_ROOT"}
    }
    env.update(ARCRM_VAR_DIR=str(var_dir), HOST="127.0.0.1", PORT=str(free_port), DEBUG="1")
    launcher = spawn("-m", "arcrm.launcher", env=env, name="launcher")
    base = f"http://127.0.0.1:{free_port}"
    # Cookies are kept so the session survives from login to the customer list;
    # no proxy, whatever the environment says.
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        urllib.request.HTTPCookieProcessor(cookies := http.cookiejar.CookieJar()),
    )

    def login_page_answers() -> bool:
        assert launcher.popen.poll() is None, f"the launcher exited early:\n{launcher.output()}"
        return _status(opener, f"{base}/login/") == 200

    wait_for(login_page_answers, timeout=START_TIMEOUT, message="the login page to answer 200")
    wait_for(
        lambda: "Press Ctrl-C to stop" in launcher.output(),
        timeout=10,
        message="the launcher to print the demo logins",
    )
    output = launcher.output()
    assert f"running at {base}/" in output
    for login in ("manager", "carla", "colin", "cora", "viewer"):
        assert login in output

    with opener.open(f"{base}/login/", timeout=10) as response:
        form = response.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    assert token, form
    assert any(cookie.name == "csrftoken" for cookie in cookies)
    credentials = {
        "username": "manager",
        "password": "arcrm-demo",
        "csrfmiddlewaretoken": token[1],
    }
    with opener.open(
        f"{base}/login/", data=urllib.parse.urlencode(credentials).encode(), timeout=10
    ) as response:
        # A manager has a list of work: signing in leads to it.
        assert urllib.parse.urlsplit(response.url).path == "/collections/worklist/", response.read()[:2000]
    with opener.open(f"{base}/customers/", timeout=10) as response:
        assert response.status == 200
        page = response.read().decode()
    with sqlite3.connect(var_dir / "arcrm.sqlite3") as db:
        names = [name for (name,) in db.execute("SELECT name FROM customers_customer")]
    assert names, "seed_demo created no customer"
    assert any(html.escape(name) in page for name in names)
    # A search typed in small letters finds a contact whose name starts with a
    # capital beyond A to Z (Élodie), as it does on PostgreSQL.
    with sqlite3.connect(var_dir / "arcrm.sqlite3") as db:
        contacts = db.execute("SELECT name, customer_id FROM customers_contact").fetchall()
    name, customer_id = next((name, customer_id) for name, customer_id in contacts
                             if not name[0].isascii() and name[0].isupper())
    query = urllib.parse.urlencode({"q": name.split()[0].lower()})
    with opener.open(f"{base}/customers/?{query}", timeout=10) as response:
        assert f'href="/customers/{customer_id}/"' in response.read().decode(), name
    # An account whose timeline holds the demo's dunning: its page and its
    # step's page render on SQLite too (its JSON reads differ from PostgreSQL's).
    with sqlite3.connect(var_dir / "arcrm.sqlite3") as db:
        customer_id, action_id = db.execute(
            "SELECT customer_id, id FROM collections_dunningaction WHERE status = 'done' "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
    with opener.open(f"{base}/customers/{customer_id}/", timeout=10) as response:
        assert response.status == 200
        assert f"/collections/actions/{action_id}/" in response.read().decode()

    # The worker (with beat) on the filesystem broker is up too, not crashed on start.
    wait_for(
        lambda: re.search(r"celery@\S+ ready\.", launcher.output()),
        timeout=60,
        message="the Celery worker to be ready",
    )
    assert "beat: Starting" in launcher.output()

    os.killpg(launcher.pid, signal.SIGINT)  # what Ctrl-C in the terminal does

    assert launcher.popen.wait(timeout=STOP_TIMEOUT) == 0, launcher.output()
    wait_for(
        lambda: not launcher.session_pids(),
        timeout=5,
        message="every process the launcher started to exit",
    )
    assert "stopped." in launcher.output()
    assert list(var_dir.glob("celerybeat-schedule*")), "beat kept its schedule outside var/"


def test_the_launcher_prints_exactly_the_logins_seed_demo_creates():
    from arcrm import demo, launcher

    printed = {name.strip() for names, _ in launcher.DEMO_LOGINS for name in names.split(",")}

    assert printed == {username for username, *_ in demo.DEMO_USERS}
    assert launcher.DEMO_PASSWORD == demo.DEMO_PASSWORD


@pytest.mark.parametrize(("env", "commands"), [
    ({"DEBUG": "0"}, ["migrate", "seed_demo --check", "collectstatic"]),
    ({"DEBUG": "0", "DEMO": "1"}, ["migrate", "seed_demo --if-empty", "collectstatic"]),
    ({"DEBUG": "1"}, ["migrate", "seed_demo --if-empty"]),
], ids=["debug-off", "demo-on", "debug-on"])
def test_the_launcher_seeds_the_demo_users_only_for_a_demo(monkeypatch, env, commands):
    """The demo users share a published password: an install started without
    DEBUG (and without DEMO=1) gets none of them."""
    ran: list[tuple[str, ...]] = []

    def manage(children, *args, **kwargs):
        ran.append(args)
        return launcher.DEMO_ABSENT if args == ("seed_demo", "--check") else 0

    def spawn(*args):
        raise launcher.StopRequested  # stop once the preparation is over

    monkeypatch.delenv("DEMO", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(launcher, "_manage", manage)
    monkeypatch.setattr(launcher, "_spawn", spawn)

    with pytest.raises(launcher.StopRequested):
        launcher._serve({}, launcher._config())

    # Without a demo the launcher only asks whether an earlier one seeded the database.
    assert [" ".join(args[:2]) if args[0] == "seed_demo" else args[0] for args in ran] == commands, ran


class _Running:
    """A web server or worker that keeps running (what _spawn hands back)."""

    def poll(self):
        return None


@pytest.mark.parametrize(("seeded", "said", "not_said"), [
    (True, "Demo logins, password 'arcrm-demo'", "No demo data"),
    (False, "No demo data (DEBUG is off; DEMO=1 seeds it)", "Demo logins"),
], ids=["demo-in-database", "no-demo"])
def test_with_debug_off_the_launcher_says_whether_the_database_holds_the_demo(
    monkeypatch, capsys, seeded, said, not_said
):
    """A database seeded by an earlier demo run keeps its demo users when the
    launcher starts again without DEBUG: it said "No demo data" over a
    database full of it, the logins that work unsaid."""
    ran: list[tuple[str, ...]] = []

    def manage(children, *args, **kwargs):
        ran.append(args)
        return 0 if seeded or args[0] != "seed_demo" else launcher.DEMO_ABSENT

    checks = iter([None])

    def check(children):
        if next(checks, "stop") == "stop":
            raise launcher.StopRequested

    monkeypatch.delenv("DEMO", raising=False)
    monkeypatch.setenv("DEBUG", "0")
    monkeypatch.setattr(launcher, "_manage", manage)
    monkeypatch.setattr(launcher, "_spawn", lambda *args: _Running())
    monkeypatch.setattr(launcher, "_wait_until_answering", lambda url, children: None)
    monkeypatch.setattr(launcher, "_check", check)

    with pytest.raises(launcher.StopRequested):
        launcher._serve({}, launcher._config())

    out = capsys.readouterr().out
    assert said in out and not_said not in out
    # Asked, not seeded: the users share a published password.
    assert ("seed_demo", "--check") in ran
    assert not any(args[0] == "seed_demo" and args[1:] != ("--check",) for args in ran), ran


def test_seed_demo_check_says_by_its_exit_code_whether_the_demo_users_are_there(db):
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from arcrm import demo
    from customers.models import Customer

    with pytest.raises(SystemExit) as exited:
        call_command("seed_demo", "--check")
    assert exited.value.code == launcher.DEMO_ABSENT

    User.objects.create_user(demo.DEMO_USERS[1][0])
    call_command("seed_demo", "--check")  # no exit: 0
    assert not Customer.objects.exists()  # asked, nothing seeded


def _launch(tmp_path, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `command` (the launcher unless given) from the repository, with a
    fresh var/ folder and only `env` (and PATH) set."""
    return subprocess.run(
        command or [sys.executable, "-m", "arcrm.launcher"],
        cwd=REPO_DIR,
        env={"PATH": os.environ.get("PATH", ""), "ARCRM_VAR_DIR": str(tmp_path / "var"), "DEBUG": "1", **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _said(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]


@pytest.mark.parametrize(("env", "said"), [
    ({"PORT": "abc"}, "PORT must be a whole number from 1 to 65535; got 'abc'"),
    ({"PORT": "0"}, "PORT must be a whole number from 1 to 65535; got '0'"),
    ({"PORT": "-1"}, "PORT must be a whole number from 1 to 65535; got '-1'"),
    ({"PORT": "70000"}, "PORT must be a whole number from 1 to 65535; got '70000'"),
    ({"HOST": "127.0.0.1:8000"},
     "HOST takes an address or a host name without a port (the port goes in PORT); got '127.0.0.1:8000'"),
    ({"HOST": "192.0.2.1"}, "HOST 192.0.2.1 is not an address of this machine (Cannot assign requested "
                            "address); e.g. HOST=127.0.0.1, or HOST=0.0.0.0 for every address"),
    ({"DEMO": "perhaps"}, "DEMO must be one of 1/0, true/false, yes/no, on/off; got 'perhaps'"),
], ids=["port-text", "port-0", "port-negative", "port-too-big", "host-with-port", "host-elsewhere", "demo"])
def test_a_bad_address_or_switch_is_refused_in_one_line_before_anything_starts(tmp_path, env, said):
    """PORT=abc ended in a traceback; PORT=0 migrated and seeded, then waited
    for a server on port 0 until it gave up."""
    result = _launch(tmp_path, **env)

    assert result.returncode == 2
    assert _said(result) == [f"arcrm: error: {said}"]
    assert not (tmp_path / "var").exists(), "the launcher migrated before checking its address"


def test_a_database_that_does_not_exist_is_said_in_one_line_without_a_traceback(tmp_path):
    """The migration's traceback came first, pages of it, then the launcher's
    line that it failed: the one line that matters was lost above."""
    url = "postgres://postgres@127.0.0.1:5432/arcrm_polish_no_such_database"

    result = _launch(tmp_path, DATABASE_URL=url)

    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    [line] = _said(result)
    assert line.startswith("error: cannot connect to the database DATABASE_URL names: "), line
    assert 'database "arcrm_polish_no_such_database" does not exist' in line


def test_make_run_with_a_port_that_is_not_a_number_says_so_without_a_traceback(tmp_path):
    # -o install: the packages are those of the interpreter running the tests.
    result = _launch(tmp_path, "make", "--no-print-directory", "-o", "install", "run", f"PY={sys.executable}",
                     PORT="abc")

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "arcrm: error: PORT must be a whole number from 1 to 65535; got 'abc'" in _said(result)
    assert not (tmp_path / "var").exists()


def test_a_port_another_server_holds_stops_the_launcher_before_it_starts_anything(tmp_path, free_port):
    """It announced 'running at' with the demo logins, pointing at the other
    server, before its own web server failed to bind and took everything down."""
    with socket.create_server(("127.0.0.1", free_port)):
        result = _launch(tmp_path, HOST="127.0.0.1", PORT=str(free_port))

    assert result.returncode == 2
    assert _said(result) == [
        f"arcrm: error: cannot serve on port {free_port} of 127.0.0.1: Address already in use; stop what "
        f"serves there or choose another port, e.g. PORT=8080 make run"
    ]
    assert not (tmp_path / "var").exists()


# --- Stopping it as a service manager would ---------------------------------------


@pytest.fixture(scope="module")
def demo_var_dir(tmp_path_factory) -> Path:
    """One var/ folder for the tests below: the first start migrates and seeds
    it, the others find it ready and start in seconds."""
    return tmp_path_factory.mktemp("demo") / "var"


def _demo_env(var_dir: Path, port: int) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SECRET_KEY",
                          "STATIC_ROOT", "MEDIA_ROOT"}}
    return {**env, "ARCRM_VAR_DIR": str(var_dir), "HOST": "127.0.0.1", "PORT": str(port), "DEBUG": "1"}


def _start_make_run(tmp_path: Path, env: dict[str, str]) -> Spawned:
    log_path = tmp_path / "make-run.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            # -o install: the packages are those of the interpreter running the tests.
            ["make", "--no-print-directory", "-o", "install", "run", f"PY={sys.executable}"],
            cwd=REPO_DIR, env={**env, "PYTHONUNBUFFERED": "1"}, stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    return Spawned(popen, log_path)


def _wait_until_running(process: Spawned, wait_for) -> None:
    def ready() -> bool:
        assert process.popen.poll() is None, f"it exited early:\n{process.output()}"
        output = process.output()
        return "Press Ctrl-C to stop" in output and bool(re.search(r"celery@\S+ ready\.", output))

    wait_for(ready, timeout=START_TIMEOUT, message="the web server and the worker to be up")


def _session_left(process: Spawned) -> list[str]:
    return [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            for pid in process.session_pids() if Path(f"/proc/{pid}/cmdline").exists()]


def test_make_run_stopped_with_sigterm_stops_the_web_server_and_the_worker_cleanly(
    tmp_path, demo_var_dir, free_port, wait_for
):
    """What a service manager does: SIGTERM to make's process alone."""
    make = _start_make_run(tmp_path, _demo_env(demo_var_dir, free_port))
    _wait_until_running(make, wait_for)

    make.popen.send_signal(signal.SIGTERM)

    make.popen.wait(timeout=STOP_TIMEOUT)
    wait_for(lambda: not make.session_pids(), timeout=5, message="every process make run started to exit")
    output = make.output()
    assert "arcrm: stopped.\n" in output, output[-3000:]
    assert "with errors" not in output
    assert "worker: Warm shutdown" in output and "Shutting down: Master" in output


def test_the_launcher_stopped_with_sigterm_exits_0(spawn, demo_var_dir, free_port, wait_for):
    launcher = spawn("-m", "arcrm.launcher", env=_demo_env(demo_var_dir, free_port), name="launcher")
    _wait_until_running(launcher, wait_for)

    launcher.popen.send_signal(signal.SIGTERM)

    assert launcher.popen.wait(timeout=STOP_TIMEOUT) == 0, launcher.output()[-3000:]
    wait_for(lambda: not launcher.session_pids(), timeout=5, message="every process it started to exit")


def test_a_launcher_killed_outright_takes_its_web_server_and_worker_with_it(
    spawn, demo_var_dir, free_port, wait_for
):
    """A service manager whose patience ran out sends SIGKILL, which no handler
    sees: the web server kept the port and the worker kept running tasks, with
    no launcher left to stop them."""
    launcher = spawn("-m", "arcrm.launcher", env=_demo_env(demo_var_dir, free_port), name="launcher")
    _wait_until_running(launcher, wait_for)

    launcher.popen.send_signal(signal.SIGKILL)
    launcher.popen.wait(timeout=10)

    wait_for(lambda: not launcher.session_pids(), timeout=STOP_TIMEOUT,
             message=f"the launcher's children to exit; left: {_session_left(launcher)}")
    output = launcher.output()
    assert "worker: Warm shutdown" in output and "Shutting down: Master" in output, output[-3000:]
