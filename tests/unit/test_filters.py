"""dockyard.filters: moby's filter parsing and matching rules."""

from __future__ import annotations

import pytest

from dockyard.errors import InvalidParameter
from dockyard.filters import Filters
from dockyard.timefmt import parse_duration, parse_timestamp


def test_both_wire_forms_parse_the_same():
    cli = Filters.parse('{"label":{"a=b":true,"c":true},"dangling":{"true":true}}')
    py = Filters.parse('{"label":["a=b","c"],"dangling":["true"]}')
    assert cli == py and cli.get("label") == ["a=b", "c"]
    assert not Filters.parse("") and not Filters.parse(None)
    for bad in ("{not json", "[1, 2]", '{"label": null}'):
        with pytest.raises(InvalidParameter):
            Filters.parse(bad)


def test_unknown_keys_are_refused_by_name():
    with pytest.raises(InvalidParameter, match="Invalid filter 'bogus'"):
        Filters({"label": ["x"], "bogus": ["1"]}).validate(["label", "name"])


def test_match_is_exact_or_a_regular_expression_found_in_the_source():
    f = Filters({"name": ["web"]})
    assert f.match("name", "/my-web-1") and not f.match("name", "/db")
    assert Filters({"name": ["^/w.b$"]}).match("name", "/web")
    assert Filters({"name": ["[broken"]}).match("name", "[broken")  # a bad pattern still matches exactly
    assert Filters().match("name", "anything")


def test_kv_lists_and_prune_labels():
    labels = {"tier": "front", "env": "prod"}
    assert Filters({"label": ["tier"]}).match_kv_list("label", labels)
    assert Filters({"label": ["tier=front", "env=prod"]}).match_kv_list("label", labels)
    assert not Filters({"label": ["tier=back"]}).match_kv_list("label", labels)
    assert not Filters({"label": ["tier"]}).match_kv_list("label", {})
    assert Filters({"label!": ["env=dev"]}).match_labels(labels)
    assert not Filters({"label!": ["env"]}).match_labels(labels)
    assert Filters({"label!": ["env"]}).match_labels({})


def test_typed_values():
    assert Filters({"dangling": ["1"]}).bool_value("dangling") is True
    assert Filters({"dangling": ["false"]}).bool_value("dangling") is False
    assert Filters().bool_value("dangling") is None
    with pytest.raises(InvalidParameter, match="Invalid filter 'dangling=maybe'"):
        Filters({"dangling": ["maybe"]}).bool_value("dangling")
    with pytest.raises(InvalidParameter):
        Filters({"dangling": ["true", "false"]}).bool_value("dangling")
    assert Filters({"until": ["10m"]}).until(now=1000.0) == 400.0
    assert Filters({"until": ["1700000000"]}).until() == 1700000000
    with pytest.raises(InvalidParameter):
        Filters({"until": ["1h", "2h"]}).until()


def test_go_durations_and_docker_timestamps():
    assert parse_duration("1h30m") == 5400 and parse_duration("300ms") == 0.3 and parse_duration("-2m") == -120
    for bad in ("", "5", "1x", "h"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert parse_timestamp("2m", 1000) == 880
    assert parse_timestamp("1700000000.5", 0) == 1700000000.5
    assert parse_timestamp("2024-01-01T00:00:00Z", 0) == 1704067200
    assert parse_timestamp("2024-01-01T01:00:00+01:00", 0) == 1704067200
    with pytest.raises(ValueError):
        parse_timestamp("yesterday", 0)
