"""RFC 3339 as the Engine API writes and reads it (one helper for daemon, drivers, registry and CLI)."""

from __future__ import annotations

import pytest

from dockyard.timefmt import NEVER, go_rfc3339nano, iso, iso_ns, parse_iso, to_unix, to_utc

T = 1_700_000_000  # 2023-11-14T22:13:20Z


def test_fixed_digits():
    assert iso_ns(T * 10**9 + 5) == "2023-11-14T22:13:20.000000005Z"
    assert iso(T + 0.5) == "2023-11-14T22:13:20.500000000Z"
    assert iso(T + 0.5, digits=3) == "2023-11-14T22:13:20.500Z"
    assert iso(T + 0.5, digits=0) == "2023-11-14T22:13:20Z"
    assert iso(T + 0.123456) == "2023-11-14T22:13:20.123456000Z"  # a float's microseconds, exactly


def test_go_rfc3339nano_trims_zeros():
    assert go_rfc3339nano(T * 10**9 + 250_000_000) == "2023-11-14T22:13:20.25Z"
    assert go_rfc3339nano(T * 10**9 + 7) == "2023-11-14T22:13:20.000000007Z"
    assert go_rfc3339nano(T * 10**9) == "2023-11-14T22:13:20Z"


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("2023-11-14T22:13:20Z", T),
        ("2023-11-14T22:13:20.500000000Z", T + 0.5),
        ("2023-11-14T22:13:20.123456789123Z", T + 0.123456789123),  # more digits than Python's 6
        ("2023-11-14T23:13:20+01:00", T),
        ("2023-11-14T21:13:20-0100", T),
        ("2023-11-14T22:13:20", T),  # no zone: UTC, as the docker CLI reads --since
        ("2023-11-14", T - 22 * 3600 - 13 * 60 - 20),
        (NEVER, 0),
        ("", 0),
    ],
)
def test_parse(text, seconds):
    assert parse_iso(text) == pytest.approx(seconds)


def test_round_trip_and_unix():
    assert parse_iso(iso(T + 0.75)) == pytest.approx(T + 0.75)
    assert to_unix(iso(T + 0.75)) == T


@pytest.mark.parametrize("bad", ["yesterday", "2023-11-14T22", "14/11/2023", "2023-11-14T22:13:20Zjunk"])
def test_parse_refuses(bad):
    with pytest.raises(ValueError):
        parse_iso(bad)


@pytest.mark.parametrize(
    "value, utc",
    [
        ("2024-05-01T12:00:00.123456789+02:00", "2024-05-01T10:00:00.123456789Z"),
        ("2024-05-01T00:30:00.5-01:30", "2024-05-01T02:00:00.5Z"),
        ("2024-05-01T00:00:00Z", "2024-05-01T00:00:00Z"),
    ],
)
def test_to_utc_keeps_the_fraction(value, utc):
    assert to_utc(value) == utc
