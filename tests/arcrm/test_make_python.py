"""`make run` and `make test` stop at once, in one line, on a Python older
than the 3.11 the README asks for: an older one built .venv and failed later,
far from its cause, in whatever package first used a newer feature."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.arcrm.conftest import REPO_DIR


def _fake_python(folder: Path, version: str) -> Path:
    """A `python3` on PATH that is the given version: it answers every
    question about its version with it, and does nothing else."""
    folder.mkdir()
    python = folder / "python3"
    python.write_text(f"#!/bin/sh\necho {version}\n")
    python.chmod(0o755)
    return python


def _make(tmp_path: Path, target: str, path_first: Path | None = None, **variables: str):
    # The Makefile and the lock it installs, in a folder of their own: no
    # .venv there, so make takes the interpreter from PATH (PYTHON's
    # default), as on a fresh clone.
    for name in ("Makefile", "requirements.lock"):
        shutil.copy(REPO_DIR / name, tmp_path / name)
    path = os.environ.get("PATH", "")
    return subprocess.run(
        ["make", "--no-print-directory", target, *(f"{k}={v}" for k, v in variables.items())],
        cwd=tmp_path,
        env={"PATH": f"{path_first}:{path}" if path_first else path, "HOME": str(tmp_path)},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )


@pytest.mark.parametrize("target", ["run", "test"])
@pytest.mark.parametrize("version", ["3.10.14", "2.7.18"])
def test_make_stops_at_once_on_a_python_older_than_3_11(tmp_path, target, version):
    fake = _fake_python(tmp_path / "bin", version)

    result = _make(tmp_path, target, path_first=fake.parent)

    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.splitlines()[0] == (
        f"error: arcrm needs Python 3.11; python3 is Python {version} "
        f"(name another with PYTHON=, e.g. PYTHON=python3.11 make {target})")
    assert not (tmp_path / ".venv").exists()


def test_make_says_so_when_there_is_no_python_at_all(tmp_path):
    result = _make(tmp_path, "run", PYTHON="no-such-python3")

    assert result.returncode != 0
    assert result.stderr.splitlines()[0] == (
        "error: arcrm needs Python 3.11; no-such-python3 is not found "
        "(name another with PYTHON=, e.g. PYTHON=python3.11 make run)")


def test_the_python_running_the_tests_passes_the_check(tmp_path):
    result = _make(tmp_path, "python-version", PYTHON=sys.executable)

    assert result.returncode == 0, result.stderr
    assert result.stdout == result.stderr == ""


def test_a_newer_python_passes_the_check(tmp_path):
    fake = _fake_python(tmp_path / "bin", "3.13.1")

    result = _make(tmp_path, "python-version", path_first=fake.parent)

    assert result.returncode == 0, result.stderr
