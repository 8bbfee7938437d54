"""Durations, sizes, IDs, quoting and table layout in the docker CLI's style."""

from __future__ import annotations

import pytest

from dockyard.cli import formatting as fmt
from dockyard.cli.container import PS_HEADERS, ps_rows
from dockyard.cli.image import IMAGE_HEADERS, image_rows

NOW = 1_795_931_395.0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "Less than a second"),
        (0.9, "Less than a second"),
        (1, "1 second"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (59 * 60, "59 minutes"),
        (3600, "About an hour"),
        (int(1.4 * 3600), "About an hour"),
        (int(1.6 * 3600), "2 hours"),
        (47 * 3600, "47 hours"),
        (48 * 3600, "2 days"),
        (13 * 86400, "13 days"),
        (14 * 86400, "2 weeks"),
        (59 * 86400, "8 weeks"),
        (60 * 86400, "2 months"),
        (729 * 86400, "24 months"),
        (730 * 86400, "2 years"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert fmt.human_duration(seconds) == text


def test_time_ago_from_unix_and_rfc3339() -> None:
    assert fmt.time_ago(NOW - 3 * 60, now=NOW) == "3 minutes ago"
    assert fmt.time_ago(NOW - 61, now=NOW) == "About a minute ago"
    assert fmt.time_ago(NOW - 2 * 3600, now=NOW) == "2 hours ago"
    assert fmt.time_ago(NOW + 5, now=NOW) == "Less than a second ago"  # clock skew
    created = "2026-11-29T05:49:52.597634005Z"
    ts = fmt.parse_timestamp(created)
    assert ts is not None and abs(ts - 1795931392.597634) < 1e-3
    assert fmt.time_ago(created, now=ts + 5) == "5 seconds ago"
    assert fmt.time_ago("0001-01-01T00:00:00Z") == ""
    assert fmt.time_ago(None) == ""


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (12, "12B"),
        (999, "999B"),
        (1000, "1kB"),
        (1234, "1.23kB"),
        (1_981_952, "1.98MB"),
        (1_990_000, "1.99MB"),
        (1_240_000, "1.24MB"),
        (123_456_789, "123MB"),
        (5_000_000_000, "5GB"),
    ],
)
def test_human_size(size: int, text: str) -> None:
    assert fmt.human_size(size) == text


def test_bytes_size_binary() -> None:
    assert fmt.bytes_size(25276510208) == "23.54GiB"
    assert fmt.bytes_size(1024) == "1KiB"
    assert fmt.bytes_size(512) == "512B"


def test_short_id() -> None:
    full = "af86217f3a4cc25bdcd621f677b85bece5530e977a77ea04da6ca098f0b5e68f"
    assert fmt.short_id(full) == "af86217f3a4c"
    assert fmt.short_id("sha256:" + full) == "af86217f3a4c"
    assert fmt.short_id("sha256:" + full, no_trunc=True) == "sha256:" + full


def test_ellipsis_and_go_quote() -> None:
    cmd = "sh -c 'i=0; while true; do echo line $i; i=$((i+1)); sleep 1; done'"
    assert fmt.go_quote(fmt.ellipsis(cmd, 20)) == '"sh -c \'i=0; while t…"'
    assert fmt.go_quote(fmt.ellipsis("cat", 20)) == '"cat"'
    assert fmt.ellipsis("x" * 20, 20) == "x" * 20
    assert fmt.ellipsis("x" * 21, 20) == "x" * 19 + "…"
    assert fmt.go_quote('say "hi"\n\t\\') == r'"say \"hi\"\n\t\\"'
    assert fmt.go_quote("\x01é") == '"\\x01é"'


def test_format_ports() -> None:
    ports = [
        {"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 18080, "Type": "tcp"},
        {"PrivatePort": 443, "Type": "tcp"},
        {"IP": "::", "PrivatePort": 80, "PublicPort": 18080, "Type": "tcp"},
    ]
    assert fmt.format_ports(ports) == "127.0.0.1:18080->80/tcp, [::]:18080->80/tcp, 443/tcp"
    assert fmt.format_ports([]) == ""
    assert fmt.format_ports(None) == ""


# The exact output of `docker ps` in docker-cli-traces/ps.txt, from its JSON.
PS_JSON = [
    {
        "Id": "544a957e6b86611b51d739e26c52a7748d1568e4452e20c086732e9c9ba4d285",
        "Names": ["/stupefied_babbage"],
        "Image": "alpine:3.10",
        "Command": "cat",
        "Created": 1795931394,
        "Ports": [],
        "Status": "Up Less than a second",
    },
    {
        "Id": "af86217f3a4cc25bdcd621f677b85bece5530e977a77ea04da6ca098f0b5e68f",
        "Names": ["/h4-d"],
        "Image": "busybox",
        "Command": "sh -c 'i=0; while true; do echo line $i; i=$((i+1)); sleep 1; done'",
        "Created": 1795931392,
        "Ports": [{"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 18080, "Type": "tcp"}],
        "Status": "Up 2 seconds",
    },
]
PS_OUTPUT = """\
CONTAINER ID   IMAGE         COMMAND                  CREATED         STATUS                  PORTS                     NAMES
544a957e6b86   alpine:3.10   "cat"                    1 second ago    Up Less than a second                             stupefied_babbage
af86217f3a4c   busybox       "sh -c 'i=0; while t…"   3 seconds ago   Up 2 seconds            127.0.0.1:18080->80/tcp   h4-d
"""


def test_ps_table_matches_docker() -> None:
    table = fmt.render_table(PS_HEADERS, ps_rows(PS_JSON, no_trunc=False, now=1795931395.5))
    assert table == PS_OUTPUT


def test_ps_no_trunc_keeps_full_command_and_id() -> None:
    rows = ps_rows(PS_JSON[1:], no_trunc=True, now=1795931395.5)
    assert rows[0][0] == PS_JSON[1]["Id"]
    assert rows[0][2] == "\"sh -c 'i=0; while true; do echo line $i; i=$((i+1)); sleep 1; done'\""


def test_ps_names_hide_links_unless_no_trunc() -> None:
    c = dict(PS_JSON[0], Names=["/web/db", "/db"])
    assert ps_rows([c], no_trunc=False)[0][6] == "db"
    assert ps_rows([c], no_trunc=True)[0][6] == "web/db,db"


IMAGES_OUTPUT = """\
REPOSITORY   TAG       IMAGE ID       CREATED          SIZE
busybox      latest    448b4b17e68b   30 minutes ago   1.98MB
<none>       <none>    b078bb4cbb3c   7 seconds ago    0B
"""


def test_images_table_matches_docker_layout() -> None:
    images = [
        {
            "Id": "sha256:448b4b17e68bd47d3aa3c166c52dbf1fa5fa8be1389831cf5282ae00e6eac1c9",
            "RepoTags": ["busybox:latest"],
            "Created": NOW - 1800,
            "Size": 1981952,
        },
        {"Id": "sha256:b078bb4cbb3c" + "0" * 52, "RepoTags": None, "Created": NOW - 7, "Size": 0},
    ]
    rows = image_rows(images, no_trunc=False, now=NOW)
    assert fmt.render_table(IMAGE_HEADERS, rows) == IMAGES_OUTPUT


def test_images_rows_one_per_tag_and_reference_filter() -> None:
    images = [
        {
            "Id": "sha256:" + "c" * 64,
            "RepoTags": ["alpine:3.10", "localhost:5000/alpine:v1"],
            "Created": NOW,
            "Size": 10,
        }
    ]
    assert [r[:2] for r in image_rows(images, no_trunc=False, now=NOW)] == [
        ["alpine", "3.10"],
        ["localhost:5000/alpine", "v1"],
    ]
    assert [r[:2] for r in image_rows(images, no_trunc=False, reference="alpine", now=NOW)] == [["alpine", "3.10"]]
    assert image_rows(images, no_trunc=False, reference="busybox", now=NOW) == []
    assert image_rows(images, no_trunc=True, now=NOW)[0][2] == "sha256:" + "c" * 64


def test_render_table_minimum_width_and_last_column_unpadded() -> None:
    assert fmt.render_table(["A", "B"], [["x", "y"]]) == "A         B\nx         y\n"
