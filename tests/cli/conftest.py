"""Fixtures for the CLI tests: a CliRunner and an in-process fake Engine API."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from .fake_engine import FakeEngine


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def engine() -> Iterator[FakeEngine]:
    # A short path: AF_UNIX socket paths are limited to ~108 bytes.
    with tempfile.TemporaryDirectory(prefix="dy-cli-") as tmp:
        with FakeEngine(str(Path(tmp) / "engine.sock")) as fake:
            yield fake
