"""Image references, parsed as Docker does (one parser for the whole project)."""

from __future__ import annotations

import pytest

from dockyard.errors import InvalidParameter
from dockyard.reference import familiar_tagged, parse, parse_repository_tag, split_search_term


@pytest.mark.parametrize(
    "text, domain, path, tag, digest, local",
    [
        ("busybox", "docker.io", "library/busybox", "latest", None, "busybox"),
        ("busybox:1.36", "docker.io", "library/busybox", "1.36", None, "busybox"),
        ("user/app", "docker.io", "user/app", "latest", None, "user/app"),
        ("docker.io/library/busybox", "docker.io", "library/busybox", "latest", None, "busybox"),
        ("index.docker.io/user/app:v1", "docker.io", "user/app", "v1", None, "user/app"),
        ("localhost:5000/ubuntu", "localhost:5000", "ubuntu", "latest", None, "localhost:5000/ubuntu"),
        ("localhost/ubuntu:x", "localhost", "ubuntu", "x", None, "localhost/ubuntu"),
        (
            "localhost.localdomain:5000/ubuntu",
            "localhost.localdomain:5000",
            "ubuntu",
            "latest",
            None,
            "localhost.localdomain:5000/ubuntu",
        ),
        ("127.0.0.1:5080/h4-busybox:v1", "127.0.0.1:5080", "h4-busybox", "v1", None, "127.0.0.1:5080/h4-busybox"),
        (
            "reg.example.com/a/b/c@sha256:" + "a" * 64,
            "reg.example.com",
            "a/b/c",
            None,
            "sha256:" + "a" * 64,
            "reg.example.com/a/b/c",
        ),
    ],
)
def test_parse(text, domain, path, tag, digest, local):
    ref = parse(text, index="")
    assert (ref.domain, ref.path, ref.tag, ref.digest, ref.repository) == (domain, path, tag, digest, local)


def test_default_index_from_environment(monkeypatch):
    monkeypatch.setenv("DOCKYARD_INDEX_URL", "http://127.0.0.1:5999")
    ref = parse("ubuntu")
    assert (ref.domain, ref.path, ref.repository) == ("127.0.0.1:5999", "ubuntu", "ubuntu")
    assert parse("alice/app").path == "alice/app"
    assert split_search_term("busy") == ("127.0.0.1:5999", "busy")
    assert split_search_term("localhost:5000/busy") == ("localhost:5000", "busy")


@pytest.mark.parametrize("bad", ["", "user/UPPER", "a//b", "host:5000/x:bad tag", "x@sha256:short"])
def test_invalid(bad):
    with pytest.raises(InvalidParameter):
        parse(bad, index="")


@pytest.mark.parametrize(
    "ref, expected",
    [
        ("busybox", ("busybox", "latest")),
        ("busybox:1.36", ("busybox", "1.36")),
        ("docker.io/library/busybox:1", ("busybox", "1")),
        ("library/busybox", ("busybox", "latest")),
        ("localhost:5000/busybox", ("localhost:5000/busybox", "latest")),
        ("localhost.localdomain:5000/ubuntu:12.04", ("localhost.localdomain:5000/ubuntu", "12.04")),
        ("user/app:v1", ("user/app", "v1")),
    ],
)
def test_parse_repository_tag(ref, expected):
    assert parse_repository_tag(ref) == expected


@pytest.mark.parametrize("ref", ["", "Busybox", "bad name", "x:", "a@sha256:00", "busybox@sha256:" + "a" * 64])
def test_parse_repository_tag_rejects(ref):
    with pytest.raises(InvalidParameter):
        parse_repository_tag(ref)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("busybox", "busybox:latest"),
        ("docker.io/library/busybox", "busybox:latest"),
        ("user/app:v1", "user/app:v1"),
        ("localhost:5000/x", "localhost:5000/x:latest"),
        ("a@sha256:" + "b" * 64, "a@sha256:" + "b" * 64),
        ("Not A Reference", "Not A Reference"),
    ],
)
def test_familiar_tagged(text, expected):
    assert familiar_tagged(text) == expected
