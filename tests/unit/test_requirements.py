"""A missing requirement skips a test outside CI and fails it in CI; every marker is declared."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.helpers.requirements import REQUIREMENTS

ROOT = Path(__file__).resolve().parents[2]

MODULE = """
import pytest

from tests.helpers.requirements import REQUIREMENTS, require_that

REQUIREMENTS["never_there"] = (lambda: False, "apt-get install never-there")


@pytest.mark.requires_never_there
def test_marked():
    pass


def test_inside():
    require_that(False, "a unicorn", "none exist")
"""


def test_every_requirement_is_a_declared_marker():
    markers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    declared = {m.split(":")[0] for m in markers if m.startswith("requires_")}
    assert declared == {f"requires_{name}" for name in REQUIREMENTS}


def _run(pytester, monkeypatch, ci: str | None):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # a separate process: the table change stays there
    pytester.makeconftest("from tests.conftest import pytest_runtest_setup  # noqa: F401\n")
    pytester.makeini("[pytest]\nmarkers =\n    requires_never_there: test\n")
    pytester.makepyfile(test_needs=MODULE)
    return pytester.runpytest_subprocess("-ra", "-p", "no:cacheprovider")


def test_skipped_outside_ci(pytester, monkeypatch):
    result = _run(pytester, monkeypatch, None)
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*needs never there: apt-get install never-there*", "*needs a unicorn: none exist*"])


def test_failed_in_ci(pytester, monkeypatch):
    result = _run(pytester, monkeypatch, "true")
    result.assert_outcomes(errors=1, failed=1)
    result.stdout.fnmatch_lines(["*CI=true and a requirement is missing: needs never there*"])


MODULE_LEVEL = """
from tests.helpers.requirements import REQUIREMENTS, require

REQUIREMENTS["never_there"] = (lambda: False, "pip install never-there")
require("never_there", module_level=True)

import never_there  # noqa: E402,F401 - what the requirement guards


def test_uses_it():
    pass
"""


def test_a_module_that_cannot_import_is_skipped_outside_ci_and_fails_in_ci(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(test_module_needs=MODULE_LEVEL)
    monkeypatch.delenv("CI", raising=False)
    result = pytester.runpytest_subprocess("-ra", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*needs never there: pip install never-there*"])
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest_subprocess("-ra", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*CI=true and a requirement is missing: needs never there*"])
