"""schemathesis against a live daemon's own /openapi.json: the read-only endpoints fuzzed, then a container's
life (create, start, inspect, stop, wait, rm) with a known image.  No 5xx, and every answer matches the schema."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
import requests

from tests.helpers.daemon import TcpDaemon, tcp_daemon
from tests.helpers.requirements import require

require("schemathesis", module_level=True)

import schemathesis  # noqa: E402 - not before its requirement is checked
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_lxc, pytest.mark.integration]

#: never fuzzed: streams that do not end (events, logs and stats follow), archives, and whatever reaches a
#: registry on the network (search, auth, pull, push)
NOT_FUZZED = r"/events|/logs|/stats|/export|/archive|/images/get|/images/search|/auth|/attach|/exec/"


#: no 5xx, and every answer as documented (status, media type, headers, body); whether a request the schema
#: allows is accepted (positive_data_acceptance) is not asked: filter values the schema cannot enumerate
#: are rightly refused with a 400
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    unsupported_method,
]


@pytest.fixture(scope="module")
def api_daemon(tmp_path_factory) -> Iterator[TcpDaemon]:
    with tcp_daemon(tmp_path_factory.mktemp("dockyard-api")) as daemon:
        result = daemon.dockyard("run", "-d", "--name", "fuzz-target", "busybox", "sleep", "600")
        assert result.returncode == 0, result.stderr.decode()
        requests.post(f"{daemon.url}/v1.41/volumes/create", json={"Name": "fuzz-volume"}, timeout=30).raise_for_status()
        yield daemon


@pytest.fixture(scope="module")
def live_schema(api_daemon: TcpDaemon):
    return schemathesis.openapi.from_url(f"{api_daemon.url}/openapi.json")


def test_read_only_endpoints(live_schema, subtests) -> None:
    """Each GET and HEAD operation, with hypothesis-generated parameters (schemathesis' default checks).

    (Driven by hand rather than through ``schemathesis.pytest.from_fixture``, whose lazy tests need a pytest
    attribute that pytest 9.2 no longer has.)"""
    operations = [
        result.ok()
        for result in live_schema.include(method=["GET", "HEAD"]).exclude(path_regex=NOT_FUZZED).get_all_operations()
    ]
    fuzzed = [op for op in operations if "x-dockyard-refused" not in op.definition.raw]
    assert len(fuzzed) >= 15
    for operation in fuzzed:
        with subtests.test(msg=f"{operation.method.upper()} {operation.path}"):

            @given(case=operation.as_strategy())
            @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def check(case) -> None:
                case.call_and_validate(checks=CHECKS)

            check()
    # what dockyard refuses as a whole (swarm on a node in no swarm: 503, as Docker) answers just that
    for operation in operations:
        status = operation.definition.raw.get("x-dockyard-refused")
        if status is not None:
            names = re.findall(r"\{(\w+)\}", operation.path)
            response = operation.Case(**({"path_parameters": dict.fromkeys(names, "0")} if names else {})).call()
            assert response.status_code == status, (operation.path, response.text)


def test_a_containers_life_matches_the_schema(live_schema, api_daemon: TcpDaemon) -> None:
    def call(method: str, path: str, *, query=None, body=None, path_parameters=None, status: int):
        given = {"query": query, "path_parameters": path_parameters}
        if body is not None:
            given.update(body=body, media_type="application/json")
        case = live_schema[path][method].Case(**{k: v for k, v in given.items() if v is not None})
        response = case.call_and_validate()
        assert response.status_code == status, (method, path, response.status_code, response.text)
        return response

    created = call(
        "POST",
        "/containers/create",
        query={"name": "lifecycle"},
        body={
            "Image": "busybox:latest",
            "Cmd": ["sh", "-c", "echo hi; sleep 600"],
            "Labels": {"purpose": "schemathesis"},
        },
        status=201,
    ).json()
    cid = {"id": created["Id"]}
    call("GET", "/containers/{id}/json", path_parameters=cid, status=200)
    call("POST", "/containers/{id}/start", path_parameters=cid, status=204)
    call("POST", "/containers/{id}/start", path_parameters=cid, status=304)
    assert call("GET", "/containers/{id}/json", path_parameters=cid, status=200).json()["State"]["Running"]
    call("GET", "/containers/{id}/top", path_parameters=cid, status=200)
    call("GET", "/containers/json", query={"all": "true"}, status=200)
    call("GET", "/containers/{id}/changes", path_parameters=cid, status=200)
    call("POST", "/containers/{id}/pause", path_parameters=cid, status=204)
    call("POST", "/containers/{id}/unpause", path_parameters=cid, status=204)
    call("POST", "/containers/{id}/rename", path_parameters=cid, query={"name": "lifecycle2"}, status=204)
    call("POST", "/containers/{id}/stop", path_parameters=cid, query={"t": "1"}, status=204)
    call("POST", "/containers/{id}/stop", path_parameters=cid, status=304)
    waited = call("POST", "/containers/{id}/wait", path_parameters=cid, status=200).json()
    assert waited["StatusCode"] == 137 or waited["StatusCode"] == 143
    call("POST", "/commit", query={"container": created["Id"], "repo": "fuzz/committed", "tag": "1"}, status=201)
    call("GET", "/images/{name}/json", path_parameters={"name": "fuzz/committed:1"}, status=200)
    call("GET", "/images/{name}/history", path_parameters={"name": "fuzz/committed:1"}, status=200)
    call(
        "POST",
        "/images/{name}/tag",
        path_parameters={"name": "fuzz/committed:1"},
        query={"repo": "fuzz/committed", "tag": "2"},
        status=201,
    )
    call("DELETE", "/images/{name}", path_parameters={"name": "fuzz/committed:2"}, status=200)
    call("DELETE", "/containers/{id}", path_parameters=cid, status=204)
    call("GET", "/containers/{id}/json", path_parameters=cid, status=404)
    call("DELETE", "/images/{name}", path_parameters={"name": "fuzz/committed:1"}, status=200)
    net = call("POST", "/networks/create", body={"Name": "fuzz-net"}, status=201).json()
    call("GET", "/networks/{id}", path_parameters={"id": net["Id"]}, status=200)
    call("DELETE", "/networks/{id}", path_parameters={"id": net["Id"]}, status=204)
    # found by the fuzzing above: a filter key with no values was a 500 (it filters nothing, as in moby)
    assert call(
        "GET", "/images/json", query={"filters": json.dumps({"before": [], "since": [], "dangling": []})}, status=200
    ).json()
    call("POST", "/volumes/create", body={"Name": "fuzz-volume-2"}, status=201)
    call("DELETE", "/volumes/{name}", path_parameters={"name": "fuzz-volume-2"}, status=204)
