"""IDs and container names."""

import pytest

from dockyard import ids
from dockyard.errors import InvalidParameter


def test_new_id_is_64_hex_and_unique():
    made = {ids.new_id() for _ in range(200)}
    assert len(made) == 200
    assert all(ids.HEX64.match(i) and not i[:12].isdigit() for i in made)


def test_check_name():
    assert ids.check_name("/web_1") == "web_1"
    with pytest.raises(InvalidParameter, match="Invalid container name"):
        ids.check_name("-bad")
