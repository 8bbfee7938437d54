"""IDs, names and references."""

import pytest

from dockyard import ids
from dockyard.errors import InvalidParameter


def test_new_id_is_64_hex_and_unique():
    made = {ids.new_id() for _ in range(200)}
    assert len(made) == 200
    assert all(ids.HEX64.match(i) and not i[:12].isdigit() for i in made)


@pytest.mark.parametrize("ref, expected", [
    ("busybox", ("busybox", "latest")),
    ("busybox:1.36", ("busybox", "1.36")),
    ("localhost:5000/busybox", ("localhost:5000/busybox", "latest")),
    ("localhost.localdomain:5000/ubuntu:12.04", ("localhost.localdomain:5000/ubuntu", "12.04")),
    ("user/app:v1", ("user/app", "v1")),
])
def test_parse_reference(ref, expected):
    assert ids.parse_reference(ref) == expected


@pytest.mark.parametrize("ref", ["", "Busybox", "bad name", "x:", "a@sha256:00"])
def test_parse_reference_rejects(ref):
    with pytest.raises(InvalidParameter):
        ids.parse_reference(ref)


def test_check_name():
    assert ids.check_name("/web_1") == "web_1"
    with pytest.raises(InvalidParameter, match="Invalid container name"):
        ids.check_name("-bad")
