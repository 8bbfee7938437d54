"""docs/api-coverage.md: every Engine API v1.41 parameter is implemented, refused or a no-op in Docker too;
none is accepted and ignored, and the document says what the daemon's own declarations say."""

from __future__ import annotations

from pathlib import Path

from dockyard.daemon import coverage

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "api-coverage.md"
SPEC = coverage.find_spec(ROOT)


def test_no_parameter_is_ignored_and_no_endpoint_missing():
    rows = coverage.parse(DOC.read_text())
    assert len(rows) > 900  # every v1.41 endpoint and parameter
    bad = [
        f"{r.status}: {r.method} {r.path} {r.where} {r.param}"
        for r in rows
        if r.status not in coverage.ALLOWED_STATUSES
    ]
    assert bad == []


def test_document_says_what_the_daemon_declares():
    """Regenerating the document from its own rows and the daemon's route and model tables gives it
    back unchanged: a route or model that stops declaring a parameter turns its row "ignored" here."""
    text = DOC.read_text()
    rows = coverage.parse(text)
    assert coverage.render(coverage.statuses(rows, coverage.app_endpoints())) == text


def test_document_lists_every_parameter_of_the_spec():
    rows = coverage.statuses(coverage.spec_rows(coverage.load_spec(SPEC)), coverage.app_endpoints())
    assert coverage.render(rows) == DOC.read_text(), "run contrib/api_coverage.py"


def test_a_route_without_declarations_is_reported_ignored():
    from dockyard.daemon.params import Endpoint

    rows = [
        coverage.Row("GET", "/things/{id}/json", "", "", "endpoint"),
        coverage.Row("GET", "/things/{id}/json", "query", "size", "boolean"),
        coverage.Row("POST", "/others", "", "", "endpoint"),
    ]
    result = coverage.statuses(rows, {("GET", "/things/{}/json"): Endpoint()})
    assert [r.status for r in result] == ["implemented", "ignored", "missing"]
