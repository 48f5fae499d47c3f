"""Settings from the environment: the readers in arcrm/env.py, the refusal to
start without a secret key in production, and .env.example kept complete."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from arcrm.env import ConfigError, env_bool, env_int, env_list, env_redis_url, env_str, parse_database_url

REPO_DIR = Path(__file__).resolve().parents[2]
VAR = "ARCRM_TEST_SETTING"


@pytest.mark.parametrize("raw", ["1", "true", "Yes", " on "])
def test_env_bool_reads_true_words(monkeypatch, raw):
    monkeypatch.setenv(VAR, raw)
    assert env_bool(VAR, False) is True


@pytest.mark.parametrize("raw", ["0", "false", "NO", "off", ""])
def test_env_bool_reads_false_words(monkeypatch, raw):
    monkeypatch.setenv(VAR, raw)
    assert env_bool(VAR, True) is False


def test_env_bool_uses_the_default_when_unset(monkeypatch):
    monkeypatch.delenv(VAR, raising=False)
    assert env_bool(VAR, True) is True


def test_env_bool_refuses_a_value_it_cannot_read_and_names_the_variable(monkeypatch):
    monkeypatch.setenv(VAR, "maybe")
    with pytest.raises(ConfigError, match=rf"{VAR} must be one of .*'maybe'"):
        env_bool(VAR, False)


def test_env_int_reads_a_whole_number_or_the_default(monkeypatch):
    monkeypatch.setenv(VAR, "42")
    assert env_int(VAR, 7) == 42
    monkeypatch.delenv(VAR)
    assert env_int(VAR, 7) == 7


def test_env_int_refuses_a_fraction_and_names_the_variable(monkeypatch):
    monkeypatch.setenv(VAR, "4.5")
    with pytest.raises(ConfigError, match=rf"{VAR} must be a whole number; got '4.5'"):
        env_int(VAR, 7)


@pytest.mark.parametrize("raw", ["0", "-5", "65536"])
def test_env_int_refuses_a_number_out_of_its_range_and_names_the_variable_and_the_range(monkeypatch, raw):
    monkeypatch.setenv(VAR, raw)
    with pytest.raises(ConfigError, match=rf"{VAR} must be a whole number from 1 to 65535; got '{raw}'"):
        env_int(VAR, 7, minimum=1, maximum=65535)


def test_env_int_takes_the_ends_of_its_range(monkeypatch):
    for raw in ("1", "65535"):
        monkeypatch.setenv(VAR, raw)
        assert env_int(VAR, 7, minimum=1, maximum=65535) == int(raw)


def test_env_int_without_a_maximum_says_the_least_it_takes(monkeypatch):
    monkeypatch.setenv(VAR, "-1")
    with pytest.raises(ConfigError, match=rf"{VAR} must be a whole number of at least 0; got '-1'"):
        env_int(VAR, 7, minimum=0)


def test_env_list_splits_on_commas_and_drops_blanks(monkeypatch):
    monkeypatch.setenv(VAR, " crm.example.com, ,localhost,, ")
    assert env_list(VAR, ["default"]) == ["crm.example.com", "localhost"]


def test_env_list_of_an_empty_value_is_empty_and_unset_is_the_default(monkeypatch):
    monkeypatch.setenv(VAR, "")
    assert env_list(VAR, ["default"]) == []
    monkeypatch.delenv(VAR)
    assert env_list(VAR, ["default"]) == ["default"]


def test_env_str_without_a_default_must_be_set(monkeypatch):
    monkeypatch.delenv(VAR, raising=False)
    with pytest.raises(ConfigError, match=f"{VAR} must be set"):
        env_str(VAR)


def test_a_postgres_url_gives_every_connection_field_and_options():
    config = parse_database_url(
        "postgres://ar%40team:s3cr%2Ft@db.example.com:6543/arcrm"
        "?sslmode=require&conn_max_age=0"
    )

    assert config == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "arcrm",
        "USER": "ar@team",
        "PASSWORD": "s3cr/t",
        "HOST": "db.example.com",
        "PORT": "6543",
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {"sslmode": "require", "server_side_binding": True, "prepare_threshold": 5,
                    "options": "-c jit=off"},
    }


def test_a_short_postgresql_url_keeps_connections_a_minute_and_prepares_statements():
    config = parse_database_url("postgresql://localhost/arcrm")

    assert (config["HOST"], config["PORT"], config["USER"], config["PASSWORD"]) == (
        "localhost", "", "", "",
    )
    assert config["CONN_MAX_AGE"] == 60
    assert config["OPTIONS"] == {"server_side_binding": True, "prepare_threshold": 5, "options": "-c jit=off"}


def test_server_settings_given_in_the_url_come_after_jit_off_and_so_can_turn_it_back_on():
    config = parse_database_url("postgres://localhost/arcrm?options=-c%20jit%3Don%20-c%20work_mem%3D64MB")

    assert config["OPTIONS"]["options"] == "-c jit=off -c jit=on -c work_mem=64MB"


@pytest.mark.parametrize("off", ["off", "None"])
def test_prepared_statements_can_be_turned_off_for_a_pooler(off):
    config = parse_database_url(f"postgres://pgbouncer:6432/arcrm?prepare_threshold={off}")

    # Django's defaults: client-side binding, nothing prepared
    assert config["OPTIONS"] == {"options": "-c jit=off"}


def test_a_prepare_threshold_that_is_not_a_number_is_refused():
    with pytest.raises(ConfigError, match="prepare_threshold must be a whole number or 'off'"):
        parse_database_url("postgres://localhost/arcrm?prepare_threshold=soon")


def test_a_sqlite_url_with_three_slashes_is_a_relative_path():
    config = parse_database_url("sqlite:///var/demo.sqlite3")

    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == "var/demo.sqlite3"


def test_a_sqlite_url_with_four_slashes_is_an_absolute_path():
    assert parse_database_url("sqlite:////srv/arcrm/db.sqlite3")["NAME"] == "/srv/arcrm/db.sqlite3"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://", "names no SQLite file"),
        ("postgres://db.example.com/", "names no database"),
        ("mysql://db.example.com/arcrm", "scheme 'mysql' is not supported"),
    ],
)
def test_a_database_url_it_cannot_use_is_refused_with_the_reason(url, message):
    with pytest.raises(ConfigError, match=message):
        parse_database_url(url)


def _import_settings(**env: str) -> subprocess.CompletedProcess[str]:
    """Load the settings in a fresh interpreter with only `env` (and PATH) set."""
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('settings loaded')"],
        cwd=REPO_DIR,
        env={"PATH": os.environ.get("PATH", ""), "DJANGO_SETTINGS_MODULE": "arcrm.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_settings_refuse_to_load_with_debug_off_and_no_secret_key(tmp_path):
    result = _import_settings(ARCRM_VAR_DIR=str(tmp_path))

    assert result.returncode != 0
    assert "ConfigError: SECRET_KEY must be set when DEBUG is off" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(("env", "message"), [
    ({}, "SECRET_KEY must be set when DEBUG is off"),
    ({"DEBUG": "1", "EMAIL_PORT": "0"}, "EMAIL_PORT must be a whole number from 1 to 65535; got '0'"),
])
def test_manage_py_says_what_is_wrong_with_the_settings_in_one_line(tmp_path, env, message):
    # The README sends people to manage.py from a shell, where DEBUG=1 (which
    # make run sets) is easily left out: the answer was a page of traceback.
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO_DIR,
        env={"PATH": os.environ.get("PATH", ""), "ARCRM_VAR_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert result.stderr == f"error: {message}\n"


@pytest.mark.slow
def test_settings_load_without_a_secret_key_in_debug_as_make_run_uses_them(tmp_path):
    result = _import_settings(ARCRM_VAR_DIR=str(tmp_path), DEBUG="1")

    assert result.returncode == 0, result.stderr
    assert "settings loaded" in result.stdout


@pytest.mark.slow
def test_settings_name_the_variable_when_debug_has_a_bad_value(tmp_path):
    result = _import_settings(ARCRM_VAR_DIR=str(tmp_path), DEBUG="sometimes")

    assert result.returncode != 0
    assert "DEBUG must be one of" in result.stderr


@pytest.mark.slow
def test_a_mail_server_speaking_tls_from_the_first_byte_is_set_with_email_use_ssl_not_both(tmp_path):
    ssl = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.core.mail import get_connection; "
         "c = get_connection(); print(c.use_ssl, c.use_tls, c.port)"],
        cwd=REPO_DIR, capture_output=True, text=True, timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "DJANGO_SETTINGS_MODULE": "arcrm.settings", "DEBUG": "1",
             "ARCRM_VAR_DIR": str(tmp_path), "EMAIL_HOST": "smtp.example.com", "EMAIL_PORT": "465",
             "EMAIL_USE_SSL": "yes"},
    )
    both = _import_settings(ARCRM_VAR_DIR=str(tmp_path), DEBUG="1", EMAIL_USE_SSL="1", EMAIL_USE_TLS="1")

    assert ssl.stdout.split() == ["True", "False", "465"], ssl.stderr
    assert both.returncode != 0
    assert "EMAIL_USE_TLS (STARTTLS, usually port 587) and EMAIL_USE_SSL" in both.stderr


@pytest.mark.slow
def test_the_delivery_sweep_runs_every_delivery_sweep_minutes_and_refuses_less_than_one(tmp_path):
    every_5 = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings; "
         "print(settings.CELERY_BEAT_SCHEDULE['sweep-waiting-actions']['schedule'])"],
        cwd=REPO_DIR, capture_output=True, text=True, timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "DJANGO_SETTINGS_MODULE": "arcrm.settings", "DEBUG": "1",
             "ARCRM_VAR_DIR": str(tmp_path), "DELIVERY_SWEEP_MINUTES": "5"},
    )
    never = _import_settings(ARCRM_VAR_DIR=str(tmp_path), DEBUG="1", DELIVERY_SWEEP_MINUTES="0")

    assert every_5.stdout.strip() == "0:05:00", every_5.stderr
    assert never.returncode != 0
    assert "DELIVERY_SWEEP_MINUTES must be a whole number of at least 1; got '0'" in never.stderr


def _variables_read_by_settings(module: str = "settings.py") -> set[str]:
    tree = ast.parse((REPO_DIR / "arcrm" / module).read_text())
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        # _daily_at reads the nightly jobs' times (COMMITMENTS_CHECK_AT, ...).
        and (node.func.id.startswith("env_") or node.func.id == "_daily_at")
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }


def test_env_example_documents_every_variable_the_settings_read():
    example = (REPO_DIR / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", example, flags=re.MULTILINE))
    read = _variables_read_by_settings()

    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "DUNNING_RUN_AT"} <= read  # the parse found them
    assert read - documented == set()


def _readme_configuration_table() -> set[str]:
    """The variables named in the first column of the README's Configuration table."""
    readme = (REPO_DIR / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    return {
        name
        for line in section.splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1])
    }


def test_readme_configuration_table_names_every_variable_read_and_only_those():
    # A new user reads the README, not .env.example: EMAIL_BACKEND, HOST and
    # PORT were read but missing from its table.
    read = _variables_read_by_settings() | _variables_read_by_settings("launcher.py")
    compose = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", (REPO_DIR / "docker-compose.yml").read_text()))
    # Read by gunicorn itself, set in the image and by a compose .env.
    gunicorn = {"WEB_CONCURRENCY"}
    assert "WEB_CONCURRENCY=" in (REPO_DIR / "Dockerfile").read_text()
    documented = _readme_configuration_table()

    assert {"HOST", "PORT", "DEMO"} <= read  # the launcher's were found
    assert read - documented == set()
    assert documented - read - compose - gunicorn == set()


@pytest.mark.slow
@pytest.mark.parametrize(("variable", "raw", "allowed"), [
    ("EMAIL_PORT", "0", "from 1 to 65535"),
    ("EMAIL_PORT", "70000", "from 1 to 65535"),
    ("EMAIL_TIMEOUT", "0", "of at least 1"),
    ("EMAIL_TIMEOUT", "-30", "of at least 1"),
    ("SECURE_HSTS_SECONDS", "-1", "of at least 0"),
    ("AUTH_CACHE_SECONDS", "-300", "of at least 0"),
    ("CELERY_VISIBILITY_TIMEOUT", "0", "of at least 60"),
    ("CELERY_VISIBILITY_TIMEOUT", "-3600", "of at least 60"),
    ("DELIVERY_SWEEP_MINUTES", "0", "of at least 1"),
    ("DELIVERY_TIME_LIMIT", "0", "of at least 10"),
    ("JOB_TIME_LIMIT", "0", "of at least 60"),
])
def test_settings_refuse_a_number_out_of_range_naming_the_variable_and_the_range(
    tmp_path, variable, raw, allowed
):
    # Loaded as they were: a mail timeout of 0 failed every send at once, a
    # visibility timeout of 0 handed every task to a second worker while the
    # first was still on it.
    result = _import_settings(ARCRM_VAR_DIR=str(tmp_path), SECRET_KEY="x", REDIS_URL="redis://127.0.0.1:1/0",
                              **{variable: raw})

    assert result.returncode != 0
    assert f"ConfigError: {variable} must be a whole number {allowed}; got '{raw}'" in result.stderr


@pytest.mark.slow
def test_settings_refuse_a_time_limit_the_broker_would_hand_to_a_second_worker_first(tmp_path):
    # A task still running when its message's visibility timeout ends is
    # delivered to another worker as well.
    result = _import_settings(ARCRM_VAR_DIR=str(tmp_path), SECRET_KEY="x", REDIS_URL="redis://127.0.0.1:1/0",
                              CELERY_VISIBILITY_TIMEOUT="300", JOB_TIME_LIMIT="60")

    assert result.returncode != 0
    assert ("ConfigError: DELIVERY_TIME_LIMIT (300 s) plus 60 s to wind down must end within "
            "CELERY_VISIBILITY_TIMEOUT (300 s)") in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("limit", ["841", "3600"])
def test_settings_refuse_a_delivery_time_limit_that_outlasts_the_sweep_s_hand_over_wait(tmp_path, limit):
    # A delivery still running (or not yet stopped) when the sweep hands its
    # steps over again would be taken for a worker that died: a last attempt
    # under way failed as stopped part-way, a step delivered by two workers.
    result = _import_settings(ARCRM_VAR_DIR=str(tmp_path), SECRET_KEY="x", DELIVERY_TIME_LIMIT=limit)

    assert result.returncode != 0
    assert (f"ConfigError: DELIVERY_TIME_LIMIT ({limit} s) plus 60 s to wind down must end within the "
            "delivery sweep's hand-over wait (900 s): at most 840 s") in result.stderr


@pytest.mark.slow
def test_a_delivery_time_limit_that_ends_just_within_the_sweep_s_hand_over_wait_is_taken(tmp_path):
    result = _import_settings(ARCRM_VAR_DIR=str(tmp_path), SECRET_KEY="x", DELIVERY_TIME_LIMIT="840")

    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_the_delivery_tasks_have_the_delivery_time_limit(tmp_path):
    code = ("import django; django.setup(); from arcrm.celery import app; "
            "app.loader.import_default_modules(); t = app.tasks; "
            "print(t['collections.deliver_actions'].soft_time_limit, "
            "t['collections.deliver_actions'].time_limit, t['collections.send_mail'].soft_time_limit, "
            "t['collections.sweep_waiting_actions'].soft_time_limit)")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_DIR, capture_output=True, text=True, timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "DJANGO_SETTINGS_MODULE": "arcrm.settings",
             "SECRET_KEY": "x", "ARCRM_VAR_DIR": str(tmp_path), "DELIVERY_TIME_LIMIT": "120"},
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["120", "180", "120", "120"]


@pytest.mark.slow
def test_a_nightly_job_s_time_limit_must_end_before_the_broker_hands_it_to_a_second_worker(tmp_path):
    result = _import_settings(ARCRM_VAR_DIR=str(tmp_path), SECRET_KEY="x", REDIS_URL="redis://127.0.0.1:1/0",
                              JOB_TIME_LIMIT="3600")

    assert result.returncode != 0
    assert ("ConfigError: JOB_TIME_LIMIT (3600 s) plus 60 s to wind down must end within "
            "CELERY_VISIBILITY_TIMEOUT (3600 s)") in result.stderr


@pytest.mark.slow
def test_the_nightly_jobs_have_the_job_time_limit(tmp_path):
    code = ("import django; django.setup(); from arcrm.celery import app; "
            "app.loader.import_default_modules(); t = app.tasks; "
            "print(*[t[f'collections.{n}'].soft_time_limit for n in ('start_dunning_run', "
            "'refresh_payment_behaviour', 'check_commitments', 'run_import')], "
            "t['collections.start_dunning_run'].time_limit, "
            "t['collections.deliver_actions'].soft_time_limit)")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_DIR, capture_output=True, text=True, timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "DJANGO_SETTINGS_MODULE": "arcrm.settings",
             "SECRET_KEY": "x", "ARCRM_VAR_DIR": str(tmp_path), "JOB_TIME_LIMIT": "900"},
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["900", "900", "900", "900", "960", "300"]


@pytest.mark.slow
def test_settings_take_zero_where_it_means_off(tmp_path):
    result = _import_settings(ARCRM_VAR_DIR=str(tmp_path), SECRET_KEY="x", REDIS_URL="redis://127.0.0.1:1/0",
                              SECURE_HSTS_SECONDS="0", AUTH_CACHE_SECONDS="0")

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://:pw@cache.example.com:6380/1",
                                 "unix:///run/redis.sock"])
def test_env_redis_url_reads_a_redis_url(monkeypatch, url):
    monkeypatch.setenv(VAR, url)
    assert env_redis_url(VAR) == url


@pytest.mark.slow
@pytest.mark.parametrize("variable", ["REDIS_URL", "CACHE_URL"])
def test_settings_refuse_a_redis_address_without_its_scheme_and_name_the_variable(tmp_path, variable):
    # Loaded as it was, the worker tried RabbitMQ at that address forever and
    # every page after signing in answered 500.
    result = _import_settings(ARCRM_VAR_DIR=str(tmp_path), SECRET_KEY="x", **{variable: "127.0.0.1:6379"})

    assert result.returncode != 0
    assert f"ConfigError: {variable} must be a Redis URL" in result.stderr


@pytest.mark.slow
def test_a_log_level_written_in_lower_case_is_taken(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "import django, logging; django.setup(); print(logging.getLogger().level)"],
        cwd=REPO_DIR,
        env={"PATH": os.environ.get("PATH", ""), "DJANGO_SETTINGS_MODULE": "arcrm.settings",
             "ARCRM_VAR_DIR": str(tmp_path), "SECRET_KEY": "x", "LOG_LEVEL": "debug"},
        capture_output=True, text=True, timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["10"]


@pytest.mark.slow
def test_settings_name_the_variable_when_the_log_level_is_unknown(tmp_path):
    result = _import_settings(ARCRM_VAR_DIR=str(tmp_path), SECRET_KEY="x", LOG_LEVEL="verbose")

    assert result.returncode != 0
    assert "ConfigError: LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR; got 'verbose'" in result.stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgres://db.example.com/arcrm?conn_max_age=soon", "conn_max_age must be a whole number"),
        ("postgres://db.example.com:fivefour/arcrm", "the port must be a number from 1 to 65535"),
        ("postgres://db.example.com:70000/arcrm", "the port must be a number from 1 to 65535"),
    ],
)
def test_a_database_url_with_a_bad_number_is_refused_naming_the_variable(url, message):
    with pytest.raises(ConfigError, match=f"DATABASE_URL .*: {message}"):
        parse_database_url(url)


def test_a_refused_database_url_does_not_repeat_its_password():
    with pytest.raises(ConfigError) as refused:
        parse_database_url("postgres://arcrm:s3cr3t-pw@db.example.com/")

    assert "names no database" in str(refused.value)
    assert "s3cr3t-pw" not in str(refused.value)


def _answer_headers(path: str, *, https: bool, **env: str) -> dict[str, str]:
    """The headers of a GET of `path` in a fresh interpreter with only `env` set."""
    code = (
        "import django, json; django.setup(); from django.test import Client; "
        f"r = Client().get({path!r}, headers={{'x-forwarded-proto': {'https' if https else 'http'!r}}}); "
        "print(json.dumps(dict(r.headers)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_DIR,
        env={"PATH": os.environ.get("PATH", ""), "DJANGO_SETTINGS_MODULE": "arcrm.settings", **env},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.slow
def test_behind_a_tls_proxy_the_site_can_tell_browsers_to_come_back_only_over_https(tmp_path):
    env = {"ARCRM_VAR_DIR": str(tmp_path), "SECRET_KEY": "x", "ALLOWED_HOSTS": "testserver",
           "BEHIND_TLS_PROXY": "1", "SECURE_HSTS_SECONDS": "31536000"}

    assert _answer_headers("/", https=True, **env)["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in _answer_headers("/", https=False, **env)
    env.pop("SECURE_HSTS_SECONDS")
    assert "Strict-Transport-Security" not in _answer_headers("/", https=True, **env)


@pytest.mark.slow
@pytest.mark.parametrize("written", ["https://ar.example.com/", "ar.example.com:443"])
def test_settings_refuse_an_address_in_allowed_hosts_and_say_to_write_the_host_name(tmp_path, written):
    # Loaded as it was, every request answered 'Bad Request (400)'.
    result = _import_settings(ARCRM_VAR_DIR=str(tmp_path), SECRET_KEY="x",
                              ALLOWED_HOSTS=f"{written},localhost")

    assert result.returncode != 0
    assert ("ConfigError: ALLOWED_HOSTS takes host names, not addresses: "
            f"write ar.example.com, not {written!r}") in result.stderr


@pytest.mark.slow
def test_settings_refuse_a_port_after_a_bracketed_ipv6_address_in_allowed_hosts(tmp_path):
    # Django compares "[::1]" from the Host header with "[::1]:8000": every request answered 400.
    result = _import_settings(ARCRM_VAR_DIR=str(tmp_path), SECRET_KEY="x", ALLOWED_HOSTS="[::1]:8000")

    assert result.returncode != 0
    assert "ALLOWED_HOSTS takes host names, not addresses: write [::1], not '[::1]:8000'" in result.stderr


@pytest.mark.slow
def test_settings_take_host_names_domains_and_bracketed_ipv6_in_allowed_hosts(tmp_path):
    result = _import_settings(ARCRM_VAR_DIR=str(tmp_path), SECRET_KEY="x",
                              ALLOWED_HOSTS="ar.example.com,.example.org,127.0.0.1,[::1],*")

    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_a_production_install_can_pass_every_deployment_check_with_its_environment_alone(tmp_path):
    """HTTPS only, HSTS for the subdomains too and on the browsers' preload
    list are each the install's own choice (a flag in .env.example); set
    together they leave Django's deployment checks nothing to warn of."""
    production = {
        "PATH": os.environ.get("PATH", ""), "DJANGO_SETTINGS_MODULE": "arcrm.settings",
        "ARCRM_VAR_DIR": str(tmp_path), "SECRET_KEY": "x" * 30 + "-a-long-random-production-secret-key",
        "ALLOWED_HOSTS": "ar.example.com", "BEHIND_TLS_PROXY": "1", "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_SSL_REDIRECT": "1", "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1", "SECURE_HSTS_PRELOAD": "1",
    }
    checked = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO_DIR, capture_output=True, text=True, timeout=120, env=production,
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "no issues" in checked.stdout


@pytest.mark.slow
def test_a_task_sent_through_the_embedded_broker_logs_no_warning(tmp_path):
    """Without REDIS_URL (the demo), the broker is the filesystem transport:
    its address names a host, or kombu warns "No hostname was supplied" each
    time its connection pool opens one, in the middle of `make run`'s seeding."""
    sent = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from arcrm.celery import app; "
         "app.send_task('collections.nothing'); print('sent')"],
        cwd=REPO_DIR, capture_output=True, text=True, timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "DJANGO_SETTINGS_MODULE": "arcrm.settings", "DEBUG": "1",
             "ARCRM_VAR_DIR": str(tmp_path)},
    )

    assert sent.stdout.split() == ["sent"], sent.stderr
    assert "WARNING" not in sent.stderr + sent.stdout, sent.stderr
    assert list((tmp_path / "broker").glob("*.msg")), "the message is in the broker's folder"
