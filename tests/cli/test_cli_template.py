"""The Go-template subset behind -f/--format."""

from __future__ import annotations

import pytest

from dockyard.cli.template import TemplateError, render

DATA = {
    "Id": "af86",
    "State": {"Status": "running", "ExitCode": 0, "Running": True},
    "Config": {"Cmd": ["sh", "-c", "echo hi"], "Env": None, "Labels": {"b": "2", "a": "1"}},
}


@pytest.mark.parametrize(
    ("template", "text"),
    [
        ("{{.State.Status}} {{.Id}}", "running af86"),
        ("{{.State.ExitCode}}", "0"),
        ("{{ .State.Running }}", "true"),
        ("{{json .Config.Cmd}}", '["sh","-c","echo hi"]'),
        ("{{.Config.Cmd | json}}", '["sh","-c","echo hi"]'),
        ("{{json .Config}}", '{"Cmd":["sh","-c","echo hi"],"Env":null,"Labels":{"b":"2","a":"1"}}'),
        ("{{.Config.Cmd}}", "[sh -c echo hi]"),
        ("{{.Config.Labels}}", "map[a:1 b:2]"),
        ("{{.Config.Env}}", "<nil>"),
        ("{{.Nope}}", "<no value>"),
        ('{{index .Config.Labels "a"}}', "1"),
        ('{{join .Config.Cmd ","}}', "sh,-c,echo hi"),
        ("{{upper .State.Status}}", "RUNNING"),
        ("{{len .Config.Cmd}}", "3"),
        ("id={{.Id}}\n", "id=af86\n"),
    ],
)
def test_render(template: str, text: str) -> None:
    assert render(template, DATA) == text


@pytest.mark.parametrize("template", ["{{range .Config.Cmd}}{{.}}{{end}}", "{{bogus .Id}}", "{{.State.Status.Deeper}}"])
def test_render_errors(template: str) -> None:
    with pytest.raises(TemplateError):
        render(template, DATA)
