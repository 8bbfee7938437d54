"""``--format`` on listings: docker's row contexts, ``table``, ``json``, and Go templates users copy from the docs."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dockyard.cli.client import CliError
from dockyard.cli.listformat import CONTAINER, IMAGE, container_row, image_row, render_listing
from dockyard.cli.main import app

from .fake_engine import IMAGE_ID, FakeEngine

ROW = {
    "Id": "f" * 64,
    "Names": ["/web", "/other/alias"],
    "Image": "busybox",
    "Command": "httpd -f -p 80",
    "Created": 1700000000,
    "State": "running",
    "Status": "Up 2 minutes",
    "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}],
    "Labels": {"com.example.tier": "front", "a": "1"},
    "NetworkSettings": {"Networks": {"bridge": {}, "app": {}}},
    "Mounts": [{"Type": "volume", "Name": "data"}],
}


def test_container_row_fields() -> None:
    row = container_row(ROW)
    assert row["ID"] == "f" * 12
    assert row["Names"] == "web"  # link aliases hidden unless --no-trunc
    assert row["Command"] == '"httpd -f -p 80"'
    assert row["Ports"] == "0.0.0.0:8080->80/tcp"
    assert row["CreatedAt"] == "2023-11-14 22:13:20 +0000 UTC"
    assert row["Labels"] == "a=1,com.example.tier=front"
    assert row["Networks"] == "app,bridge"
    assert (row["Mounts"], row["LocalVolumes"]) == ("data", "1")
    assert container_row(ROW, no_trunc=True)["Names"] == "web,other/alias"


@pytest.mark.parametrize(
    ("template", "text"),
    [
        ("{{.Names}}", "web\n"),
        ("{{.ID}}: {{.Status}}", "ffffffffffff: Up 2 minutes\n"),
        ('{{.Label "com.example.tier"}}', "front\n"),
        ("{{upper .State}}", "RUNNING\n"),
        ('{{range split .Networks ","}}<{{.}}>{{end}}', "<app><bridge>\n"),
        ('{{if eq .State "running"}}up{{end}}', "up\n"),
    ],
)
def test_plain_templates_print_one_line_per_row(template: str, text: str) -> None:
    assert render_listing(CONTAINER, template, [container_row(ROW)]) == text


def test_json_is_the_whole_row_without_methods() -> None:
    for spelling in ("{{json .}}", "json"):
        data = json.loads(render_listing(CONTAINER, spelling, [container_row(ROW)]))
        assert data["Names"] == "web" and data["Ports"] == "0.0.0.0:8080->80/tcp"
        assert "Label" not in data
        assert set(data) == set(CONTAINER.headers) - {"Label"}


def test_table_has_headers_and_tabwriter_alignment() -> None:
    text = render_listing(CONTAINER, r"table {{.ID}}\t{{.Names}}\t{{upper .State}}", [container_row(ROW)])
    assert text == ("CONTAINER ID   NAMES     STATE\nffffffffffff   web       RUNNING\n")


def test_bare_table_is_the_default_listing() -> None:
    text = render_listing(
        IMAGE, "table", [image_row({"Id": IMAGE_ID, "Size": 1983000, "Created": 0}, "busybox", "latest")]
    )
    lines = text.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert lines[1].split()[:3] == ["busybox", "latest", IMAGE_ID[7:19]] and lines[1].endswith("1.98MB")


def test_a_bad_template_is_an_error_naming_it() -> None:
    with pytest.raises(CliError, match='function "bogus" not defined'):
        render_listing(CONTAINER, "{{bogus .ID}}", [container_row(ROW)])


# -- through the commands ---------------------------------------------------------------------


def invoke(runner: CliRunner, engine: FakeEngine, *argv: str):
    return runner.invoke(app, ["-H", engine.host, *argv])


def test_ps_format(runner: CliRunner, engine: FakeEngine) -> None:
    invoke(runner, engine, "create", "--name", "p1", "busybox", "echo", "hi")
    result = invoke(runner, engine, "ps", "-a", "--format", "{{.Names}} {{.Image}} {{.Command}}")
    assert result.exit_code == 0, result.output
    assert result.stdout == 'p1 busybox "echo hi"\n'
    result = invoke(runner, engine, "ps", "-a", "--format", r"table {{.Names}}\t{{.State}}")
    assert result.stdout == "NAMES     STATE\np1        created\n"


def test_images_format_follows_the_reference_argument(runner: CliRunner, engine: FakeEngine) -> None:
    result = invoke(runner, engine, "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", "alpine")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"alpine:3.10 {'cd' * 6}\nalpine:latest {'cd' * 6}\n"
    result = invoke(runner, engine, "images", "--format", "json")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["Repository"], r["Tag"]) for r in rows] == [
        ("busybox", "latest"),
        ("alpine", "3.10"),
        ("alpine", "latest"),
        ("<none>", "<none>"),
    ]
