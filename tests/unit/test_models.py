"""Engine API models validate what the docker CLI sends and answer in its names."""

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from dockyard.models.container import ContainerState, CreateRequest
from dockyard.models.image import ImageConfig

#: the body ``docker run busybox sh -c "echo hello; echo oops >&2"`` sends (docker CLI 20.10, from a wire trace)
CREATE_BODY = Path(__file__).resolve().parents[1] / "data" / "docker-cli-create-body.json"


def test_docker_cli_create_body_round_trips():
    body = json.loads(CREATE_BODY.read_text())
    request = CreateRequest.model_validate(body)
    assert request.cmd == ["sh", "-c", "echo hello; echo oops >&2"]
    assert request.host_config.log_config.type == ""  # the daemon's default driver, filled in at create
    api = request.host_config.api()
    # fields dockyard does not act on survive into inspect unchanged
    assert api["ConsoleSize"] == [0, 0] and api["MemorySwappiness"] == -1


def test_string_cmd_is_one_argument_and_aliases():
    # moby's strslice: a JSON string is a one-element list (no shell is implied)
    request = CreateRequest.model_validate({"Image": "busybox", "Cmd": "echo hi", "HostConfig": None})
    assert request.cmd == ["echo hi"]
    assert request.host_config.network_mode == "default"


def test_bad_types_are_rejected():
    with pytest.raises(ValidationError):
        CreateRequest.model_validate({"Image": "busybox", "Tty": "maybe"})


def test_state_uses_docker_names():
    assert set(ContainerState().api()) == {
        "Status",
        "Running",
        "Paused",
        "Restarting",
        "OOMKilled",
        "Dead",
        "Pid",
        "ExitCode",
        "Error",
        "StartedAt",
        "FinishedAt",
    }


def test_image_config_is_oci_and_canonical():
    config = ImageConfig.model_validate(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["sh"], "Env": ["A=1"]},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]},
        }
    )
    data = json.loads(config.canonical_json())
    assert data["config"]["Cmd"] == ["sh"] and data["rootfs"]["diff_ids"] == ["sha256:" + "0" * 64]
    assert config.canonical_json() == ImageConfig.model_validate(data).canonical_json()
