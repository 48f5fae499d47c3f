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
import urllib.error
import urllib.parse
import urllib.request

import pytest

from arcrm import launcher

pytestmark = pytest.mark.slow

# Migrations and the demo seed on a cold SQLite file, then gunicorn and Celery.
START_TIMEOUT = 180
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
        assert urllib.parse.urlsplit(response.url).path == "/customers/", response.read()[:2000]
    with opener.open(f"{base}/customers/", timeout=10) as response:
        assert response.status == 200
        page = response.read().decode()
    with sqlite3.connect(var_dir / "arcrm.sqlite3") as db:
        names = [name for (name,) in db.execute("SELECT name FROM customers_customer")]
    assert names, "seed_demo created no customer"
    assert any(html.escape(name) in page for name in names)
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
    ({"DEBUG": "0"}, ["migrate", "collectstatic"]),
    ({"DEBUG": "0", "DEMO": "1"}, ["migrate", "seed_demo", "collectstatic"]),
    ({"DEBUG": "1"}, ["migrate", "seed_demo"]),
], ids=["debug-off", "demo-on", "debug-on"])
def test_the_launcher_seeds_the_demo_users_only_for_a_demo(monkeypatch, env, commands):
    """The demo users share a published password: an install started without
    DEBUG (and without DEMO=1) gets none of them."""
    ran: list[tuple[str, ...]] = []

    def manage(children, *args):
        ran.append(args)

    def spawn(*args):
        raise launcher.StopRequested  # stop once the preparation is over

    monkeypatch.delenv("DEMO", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(launcher, "_manage", manage)
    monkeypatch.setattr(launcher, "_spawn", spawn)

    with pytest.raises(launcher.StopRequested):
        launcher._serve({})

    assert [args[0] for args in ran] == commands, ran


def test_a_port_another_server_holds_stops_the_launcher_before_it_starts_anything(monkeypatch, free_port):
    """It announced 'running at' with the demo logins, pointing at the other
    server, before its own web server failed to bind and took everything down."""
    ran: list[tuple[str, ...]] = []
    monkeypatch.setenv("HOST", "127.0.0.1")
    monkeypatch.setenv("PORT", str(free_port))
    monkeypatch.setenv("DEBUG", "1")
    monkeypatch.setattr(launcher, "_manage", lambda children, *args: ran.append(args))
    monkeypatch.setattr(launcher, "_spawn", lambda *args: pytest.fail(f"started {args}"))

    with (
        socket.create_server(("127.0.0.1", free_port)),
        pytest.raises(launcher.LaunchError, match=f"port {free_port} of 127.0.0.1: Address already in use"),
    ):
        launcher._serve({})

    assert ran == []
