"""A small subset of Go's text/template for ``--format``.

Supported inside ``{{ }}``: field paths (``.State.ExitCode``, ``.``), string
and number literals, pipelines (``{{.Config.Cmd | json}}``) and docker's
functions ``json``, ``index``, ``join``, ``split``, ``upper``, ``lower``,
``title``, ``len``, ``println`` and ``print``.  Control actions (``range``,
``if``, ``with``) are not supported and raise :class:`TemplateError`.
Values print like Go's ``fmt`` (``map[k:v]``, ``[a b]``, ``<no value>``).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from typing import Any

__all__ = ["TemplateError", "go_format", "render"]

_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)
_MISSING = object()


class TemplateError(Exception):
    pass


def go_format(value: Any) -> str:
    """Format a decoded-JSON value like Go's ``fmt.Sprint`` would for docker's types."""
    if value is _MISSING:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_format(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def _json(value: Any) -> str:
    if value is _MISSING:
        value = None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, dict):
            value = value.get(key, _MISSING)
        elif isinstance(value, list):
            value = value[int(key)]
        else:
            raise TemplateError(f"can't index item of type {type(value).__name__}")
    return value


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": _json,
    "index": _index,
    "join": lambda items, sep: sep.join(go_format(i) for i in items or []),
    "split": lambda text, sep: str(text).split(sep),
    "upper": lambda text: go_format(text).upper(),
    "lower": lambda text: go_format(text).lower(),
    "title": lambda text: go_format(text).title(),
    "len": lambda value: len(value or []),
    "print": lambda *args: "".join(go_format(a) for a in args),
    "println": lambda *args: " ".join(go_format(a) for a in args) + "\n",
}


def _field(data: Any, path: str) -> Any:
    value = data
    for name in [p for p in path.split(".") if p]:
        if isinstance(value, dict):
            value = value.get(name, _MISSING)
        elif value is _MISSING or value is None:
            return _MISSING
        else:
            raise TemplateError(f"can't evaluate field {name} in type {type(value).__name__}")
    return value


def _operand(token: str, data: Any) -> Any:
    if token.startswith("."):
        return _field(data, token)
    if token[:1] in "\"'`":
        return token[1:-1]
    if re.fullmatch(r"-?\d+", token):
        return int(token)
    if token in ("true", "false"):
        return token == "true"
    if token == "nil":
        return None
    raise TemplateError(f'function "{token}" not defined')


def _command(tokens: list[str], data: Any, piped: Any) -> Any:
    head, args = tokens[0], tokens[1:]
    if head in FUNCTIONS:
        values = [_operand(t, data) for t in args]
        if piped is not _NOTHING:
            values.append(piped)
        try:
            return FUNCTIONS[head](*values)
        except TypeError as exc:
            raise TemplateError(f"wrong arguments for {head}: {exc}") from None
    if args or piped is not _NOTHING:
        raise TemplateError(f"can't give argument to non-function {head}")
    return _operand(head, data)


_NOTHING = object()


def _evaluate(expr: str, data: Any) -> Any:
    try:
        lexer = shlex.shlex(expr, posix=False, punctuation_chars="|")
        lexer.whitespace_split = True
        lexer.quotes = "\"'`"
        tokens = list(lexer)
    except ValueError as exc:
        raise TemplateError(str(exc)) from None
    if tokens and tokens[0] in ("range", "if", "with", "end", "else", "define", "template", "block"):
        raise TemplateError(f"unsupported template action: {tokens[0]}")
    stages: list[list[str]] = [[]]
    for token in tokens:
        if token == "|":
            stages.append([])
        else:
            stages[-1].append(token)
    value: Any = _NOTHING
    for stage in stages:
        if not stage:
            raise TemplateError("missing command in pipeline")
        value = _command(stage, data, value)
    return value


def render(template: str, data: Any) -> str:
    """Render ``template`` against ``data`` (a decoded JSON object)."""
    out: list[str] = []
    pos = 0
    for match in _ACTION.finditer(template):
        text = template[pos : match.start()]
        if match.group(0).startswith("{{-"):
            text = text.rstrip()
        out.append(text)
        expr = match.group(1).strip()
        if not expr.startswith("/*"):
            value = _evaluate(expr, data)
            out.append(value if isinstance(value, str) else go_format(value))
        pos = match.end()
        if match.group(0).endswith("-}}"):
            while pos < len(template) and template[pos].isspace():
                pos += 1
    out.append(template[pos:])
    return "".join(out)
