"""The two lock files agree: the image (requirements-runtime.lock) runs the
versions the suite was run with (requirements.lock), and carries no test or
lint tools."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[2]


def _pins(name: str) -> dict[str, str]:
    pins = {}
    for line in (REPO_DIR / name).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            package, _, version = line.partition("==")
            assert version, f"{name}: {line!r} is not pinned with =="
            pins[_normal(package)] = version.strip()
    return pins


def _normal(requirement: str) -> str:
    """The package's name as pip compares them: `psycopg[binary]` → `psycopg`, `Django` → `django`."""
    return re.sub(r"[-_.]+", "-", re.split(r"[\[=<>~ ]", requirement, maxsplit=1)[0]).lower()


PROJECT = tomllib.loads((REPO_DIR / "pyproject.toml").read_text())["project"]


def test_the_image_runs_the_versions_the_suite_runs():
    everything, runtime = _pins("requirements.lock"), _pins("requirements-runtime.lock")

    assert {p: v for p, v in runtime.items() if everything.get(p) != v} == {}


def test_the_runtime_lock_holds_every_direct_dependency_at_its_pin():
    runtime = _pins("requirements-runtime.lock")

    for requirement in PROJECT["dependencies"]:
        assert runtime.get(_normal(requirement)) == requirement.split("==")[1], requirement


def test_the_runtime_lock_carries_no_test_or_lint_tool():
    runtime = _pins("requirements-runtime.lock")

    dev_tools = {_normal(r) for r in PROJECT["optional-dependencies"]["dev"]}
    assert dev_tools & runtime.keys() == set()
    assert {"pytest", "playwright", "ruff"} <= dev_tools  # the check above looks at real names
