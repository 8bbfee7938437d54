"""-H parsing and daemon configuration precedence."""

import pytest

from dockyard.address import DEFAULT_HOST, Address, parse_host
from dockyard.daemon.config import load
from dockyard.errors import InvalidParameter


@pytest.mark.parametrize(
    "value, expected",
    [
        ("unix:///var/run/dockyard.sock", Address("unix", path="/var/run/dockyard.sock")),
        ("tcp://10.0.0.5:5555", Address("tcp", host="10.0.0.5", port=5555)),
        ("tcp://0.0.0.0", Address("tcp", host="0.0.0.0", port=4243)),
        ("tcp://:5555", Address("tcp", host="127.0.0.1", port=5555)),
        ("0.0.0.0:5555", Address("tcp", host="0.0.0.0", port=5555)),
        (":5555", Address("tcp", host="127.0.0.1", port=5555)),
        ("tcp://[::1]:2375", Address("tcp", host="::1", port=2375)),
    ],
)
def test_parse_host(value, expected):
    assert parse_host(value) == expected


@pytest.mark.parametrize("value", ["unix://relative.sock", "tcp://host:99999", "tcp://host:abc", "ssh://x"])
def test_parse_host_rejects(value):
    with pytest.raises(InvalidParameter):
        parse_host(value)


def test_config_file_under_flags(tmp_path):
    f = tmp_path / "daemon.toml"
    f.write_text('data-root = "/srv/dy"\nstorage-driver = "vfs"\nhost = ["tcp://:5000", "unix:///tmp/x.sock"]\n')
    config = load(f, {"storage_driver": "overlay", "hosts": None, "debug": None})
    assert str(config.data_root) == "/srv/dy"
    assert config.storage_driver == "overlay"  # the flag wins
    assert [str(a) for a in config.addresses()] == ["tcp://127.0.0.1:5000", "unix:///tmp/x.sock"]


def test_defaults():
    config = load(None, {})
    assert config.hosts == [DEFAULT_HOST]
    assert str(config.pid_path) == "/var/lib/dockyard/dockyard.pid"


def test_bad_config_file(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("storage-driver = [")
    with pytest.raises(InvalidParameter, match="cannot read config file"):
        load(f, {})
    f.write_text("no-such-key = 1\n")
    with pytest.raises(InvalidParameter, match="invalid daemon configuration"):
        load(f, {})


def test_log_defaults_from_the_config_file(tmp_path):
    f = tmp_path / "daemon.toml"
    f.write_text('log-driver = "json-file"\n[log-opts]\nmax-size = "10m"\nmax-file = 3\n')
    config = load(f, {"log_driver": None, "log_opts": {}})
    assert config.log_config().type == "json-file"
    assert config.log_config().config == {"max-size": "10m", "max-file": "3"}  # TOML's 3 taken as Docker's "3"
    assert load(f, {"log_opts": {"max-file": "5"}}).log_opts == {"max-file": "5"}  # flags win


@pytest.mark.parametrize(
    "text, message",
    [
        ('log-driver = "syslog"\n', "no log driver named 'syslog'"),
        ('[log-opts]\nmax-size = "huge"\n', "invalid size"),
    ],
)
def test_bad_log_defaults_stop_the_daemon_at_start(tmp_path, text, message):
    f = tmp_path / "daemon.toml"
    f.write_text(text)
    with pytest.raises(InvalidParameter, match=message):
        load(f, {})


def test_concurrent_transfers_reach_the_distribution_driver(tmp_path):
    f = tmp_path / "daemon.toml"
    f.write_text("max-concurrent-downloads = 2\nmax-concurrent-uploads = 4\n")
    options = load(f, {"max_concurrent_uploads": 1}).distribution_options()
    assert options["max-concurrent-downloads"] == "2" and options["max-concurrent-uploads"] == "1"
    assert "max-concurrent-downloads" not in load(None, {}).distribution_options()
    f.write_text("max-concurrent-downloads = 0\n")
    with pytest.raises(InvalidParameter, match="invalid daemon configuration"):
        load(f, {})
