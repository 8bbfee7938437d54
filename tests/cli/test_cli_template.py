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
        # control actions and the rest of text/template that Docker's docs use
        ("{{range .Config.Cmd}}[{{.}}]{{end}}", "[sh][-c][echo hi]"),
        ("{{range $i, $a := .Config.Cmd}}{{$i}}={{$a}} {{end}}", "0=sh 1=-c 2=echo hi "),
        ("{{range $k, $v := .Config.Labels}}{{$k}}:{{$v}};{{end}}", "a:1;b:2;"),
        ("{{range .Config.Env}}x{{else}}none{{end}}", "none"),
        ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
        ("{{if eq .State.ExitCode 1}}one{{else if eq .State.ExitCode 0}}zero{{else}}?{{end}}", "zero"),
        ("{{with .State}}{{.Status}}{{end}}", "running"),
        ("{{with .Nope}}x{{else}}empty{{end}}", "empty"),
        ("{{$s := .State.Status}}{{upper $s}}", "RUNNING"),
        ("{{range .Config.Cmd}}{{$.Id}} {{end}}", "af86 af86 af86 "),
        ("{{if and .State.Running (not .State.ExitCode)}}ok{{end}}", "ok"),
        ('{{or .Config.Env "unset"}}', "unset"),
        ('{{printf "%s:%05d|%-4s|%q" .Id 42 "a" "b"}}', 'af86:00042|a   |"b"'),
        ('{{.State.Status | upper | printf "<%s>"}}', "<RUNNING>"),
        ("{{len (index .Config.Cmd 2)}}", "7"),
        ("{{slice .Id 1 3}}", "f8"),
        ("{{truncate .Id 2}} {{pad .Id 1 1}}.", "af  af86 ."),
        ("a  {{- .Id -}}  b", "aaf86b"),
        ("{{/* a comment */}}x", "x"),
        ("{{`raw\\n`}}", "raw\\n"),
        ('{{lt 1 2}} {{ge 1 2}} {{ne .Id "x"}}', "true false true"),
        ("{{range 3}}{{.}}{{end}}", "012"),
    ],
)
def test_render(template: str, text: str) -> None:
    assert render(template, DATA) == text


@pytest.mark.parametrize(
    "template",
    [
        "{{bogus .Id}}",
        "{{.State.Status.Deeper}}",
        "{{range .Config.Cmd}}",
        "{{end}}",
        "{{if}}{{end}}",
        '{{define "x"}}{{end}}',
        "{{index .Config.Cmd 9}}",
        "{{.Id",
        "{{$nope}}",
        "{{.Id | }}",
        "{{(.Id}}",
        "{{range .Id}}{{end}}",
        "{{.Config.Env.X}}",
    ],
)
def test_render_errors(template: str) -> None:
    with pytest.raises(TemplateError):
        render(template, DATA)


def test_a_callable_field_takes_the_arguments_after_it() -> None:
    row = {"Label": lambda key: {"k": "v"}.get(key, ""), "Names": "web"}
    assert render('{{.Label "k"}}/{{.Names}}', row) == "v/web"
    assert render("{{json .}}", row) == '{"Names":"web"}'
