"""Go's text/template, the part users copy from Docker's docs into ``--format``.

Actions: ``{{pipeline}}``, ``{{if}}``/``{{else if}}``/``{{else}}``/``{{end}}``,
``{{range}}`` (over a list, or a map in key order; ``{{range $i, $e := .List}}``,
``{{else}}`` when empty), ``{{with}}``, variables (``$``, ``{{$x := .Name}}``),
comments (``{{/* */}}``) and ``{{-``/``-}}`` trimming.  Arguments: field paths
(``.State.ExitCode``, ``$x.Name``), string, raw-string, number, boolean and nil
literals, parenthesised pipelines.  Functions: Go's ``and``, ``or``, ``not``,
``eq``, ``ne``, ``lt``, ``le``, ``gt``, ``ge``, ``len``, ``index``, ``slice``,
``print``, ``println``, ``printf``, and docker's ``json``, ``join``, ``split``,
``upper``, ``lower``, ``title``, ``pad``, ``truncate``.  A field whose value is
callable is called with the arguments that follow it (docker's ``{{.Label "k"}}``
on ``ps``).  Values print like Go's ``fmt`` (``map[k:v]``, ``[a b]``,
``<no value>``, ``<nil>``).  ``define``, ``template`` and ``block`` are refused
with :class:`TemplateError`.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TemplateError", "compile_template", "go_format", "render"]

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
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_format(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def truth(value: Any) -> bool:
    """Go template truth: false, 0, nil, and empty strings, lists and maps are false."""
    if value is _MISSING or value is None:
        return False
    if isinstance(value, bool | int | float | str | list | tuple | dict):
        return bool(value)
    return True


# -- functions ----------------------------------------------------------------------------------


def _json(value: Any) -> str:
    if value is _MISSING:
        value = None
    if isinstance(value, dict):  # a list row's context: callables (.Label) are methods, not data
        value = {k: v for k, v in value.items() if not callable(v)}
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, dict):
            value = value.get(key, _MISSING)
        elif isinstance(value, list | tuple | str):
            if not isinstance(key, int) or not 0 <= key < len(value):
                raise TemplateError(f"error calling index: index out of range: {key}")
            value = value[key]
        elif value is None or value is _MISSING:
            raise TemplateError("error calling index: index of untyped nil")
        else:
            raise TemplateError(f"error calling index: can't index item of type {type(value).__name__}")
    return value


def _slice(value: Any, *bounds: int) -> Any:
    if not isinstance(value, list | tuple | str):
        raise TemplateError(f"error calling slice: can't slice item of type {type(value).__name__}")
    return value[slice(*bounds)]


def _len(value: Any) -> int:
    if value is None or value is _MISSING:
        return 0
    if isinstance(value, list | tuple | dict | str):
        return len(value)
    raise TemplateError(f"error calling len: len of type {type(value).__name__}")


def _compare(op: Callable[[Any, Any], bool], name: str) -> Callable[..., bool]:
    def compare(a: Any, *others: Any) -> bool:
        if not others:
            raise TemplateError(f"wrong number of args for {name}: want at least 2 got 1")
        try:
            return all(op(a, b) for b in others) if name == "eq" else op(a, others[0])
        except TypeError:
            raise TemplateError(f"error calling {name}: incompatible types for comparison") from None

    return compare


def _and(*args: Any) -> Any:
    for arg in args:
        if not truth(arg):
            return arg
    return args[-1]


def _or(*args: Any) -> Any:
    for arg in args:
        if truth(arg):
            return arg
    return args[-1]


_VERB = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d+))?([a-zA-Z%])")


def _printf(form: str, *args: Any) -> str:
    """Go's ``fmt.Sprintf`` for the verbs templates use (%s %v %d %q %f %g %e %x %t %%)."""
    queue = list(args)

    def verb(match: re.Match[str]) -> str:
        flags, width, precision, kind = match.groups()
        if kind == "%":
            return "%"
        if not queue:
            return f"%!{kind}(MISSING)"
        value = queue.pop(0)
        spec = "<" if "-" in flags else ">"
        if kind in "vs":
            text = go_format(value)
            if precision is not None:
                text = text[: int(precision)]
        elif kind == "q":
            from .formatting import go_quote

            text = go_quote(go_format(value))
        elif kind == "t":
            text = go_format(value)
        elif kind in "dxXo" and isinstance(value, int | float):
            text = format(int(value), {"d": "d", "x": "x", "X": "X", "o": "o"}[kind])
        elif kind in "feEgG" and isinstance(value, int | float):
            text = format(float(value), f".{precision or 6}{kind}") if kind != "g" else repr(float(value))
        else:
            text = f"%!{kind}({type(value).__name__}={go_format(value)})"
        if width:
            fill = "0" if "0" in flags and spec == ">" and kind not in "sqv" else " "
            text = format(text, f"{fill}{spec}{width}")
        return text

    text = _VERB.sub(verb, form)
    if queue:
        text += "%!(EXTRA " + ", ".join(go_format(v) for v in queue) + ")"
    return text


def _truncate(text: Any, length: int) -> str:
    value = go_format(text)
    return value[:length] if len(value) > length else value


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": _json,
    "index": _index,
    "slice": _slice,
    "len": _len,
    "join": lambda items, sep: sep.join(go_format(i) for i in items or []),
    "split": lambda text, sep: go_format(text).split(sep),
    "upper": lambda text: go_format(text).upper(),
    "lower": lambda text: go_format(text).lower(),
    "title": lambda text: go_format(text).title(),
    "pad": lambda text, left, right: " " * left + go_format(text) + " " * right,
    "truncate": _truncate,
    "print": lambda *args: "".join(go_format(a) for a in args),
    "println": lambda *args: " ".join(go_format(a) for a in args) + "\n",
    "printf": _printf,
    "and": _and,
    "or": _or,
    "not": lambda value: not truth(value),
    "eq": _compare(lambda a, b: a == b, "eq"),
    "ne": _compare(lambda a, b: a != b, "ne"),
    "lt": _compare(lambda a, b: a < b, "lt"),
    "le": _compare(lambda a, b: a <= b, "le"),
    "gt": _compare(lambda a, b: a > b, "gt"),
    "ge": _compare(lambda a, b: a >= b, "ge"),
}

# -- lexing -------------------------------------------------------------------------------------

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\]|\\.)+')
  | (?P<declare>:=)
  | (?P<assign>=)
  | (?P<punct>[|(),])
  | (?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?))(?![\w.])
  | (?P<field>(?:\$\w*)?(?:\.\w+)+|\.|\$\w*)
  | (?P<word>\w+)
""",
    re.X,
)


def _tokens(expr: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if match is None:
            raise TemplateError(f"unexpected {expr[pos]!r} in command")
        pos = match.end()
        if match.lastgroup != "space":
            tokens.append((match.lastgroup or "", match.group()))
    return tokens


# -- the tree -----------------------------------------------------------------------------------


@dataclass
class _Pipeline:
    commands: list[list[Any]]  # each command: a list of arguments (tokens or nested pipelines)
    variables: list[str] = field(default_factory=list)
    declare: bool = True


@dataclass
class _Action:
    pipeline: _Pipeline


@dataclass
class _Branch:
    kind: str  # "if", "range", "with"
    pipeline: _Pipeline
    body: list[Any]
    otherwise: list[Any]


class _Parser:
    def __init__(self, template: str) -> None:
        self.items: list[tuple[str, str]] = []
        pos = 0
        trim_next = False
        for match in _ACTION.finditer(template):
            text = template[pos : match.start()]
            if trim_next:
                text = text.lstrip()
            if match.group(1):
                text = text.rstrip()
            if text:
                self.items.append(("text", text))
            self.items.append(("action", match.group(2).strip()))
            trim_next = bool(match.group(3))
            pos = match.end()
        rest = template[pos:]
        if trim_next:
            rest = rest.lstrip()
        if "{{" in rest:
            raise TemplateError("unclosed action")
        if rest:
            self.items.append(("text", rest))
        self.index = 0

    def parse(self) -> list[Any]:
        nodes, end = self._list()
        if end is not None:
            raise TemplateError(f"unexpected {{{{{end}}}}}")
        return nodes

    def _list(self) -> tuple[list[Any], str | None]:
        """Nodes up to an ``else``/``end`` (returned as the second value) or the end of input."""
        nodes: list[Any] = []
        while self.index < len(self.items):
            kind, value = self.items[self.index]
            self.index += 1
            if kind == "text":
                nodes.append(value)
                continue
            if value.startswith("/*"):
                if not value.endswith("*/"):
                    raise TemplateError("unclosed comment")
                continue
            keyword, _, rest = value.partition(" ")
            if keyword in ("end", "else"):
                return nodes, value
            if keyword in ("if", "range", "with"):
                nodes.append(self._branch(keyword, rest))
            elif keyword in ("define", "template", "block", "break", "continue"):
                raise TemplateError(f"unsupported template action: {keyword}")
            else:
                nodes.append(_Action(_pipeline(value)))
        return nodes, None

    def _branch(self, keyword: str, rest: str) -> _Branch:
        if not rest.strip():
            raise TemplateError(f"missing value for {keyword}")
        pipeline = _pipeline(rest, allow_two=keyword == "range")
        body, end = self._list()
        otherwise: list[Any] = []
        if end is None:
            raise TemplateError(f"unexpected EOF: {{{{{keyword}}}}} without {{{{end}}}}")
        if end.startswith("else"):
            nested = end[4:].strip()
            if nested.startswith(("if ", "with ")) and keyword != "range":
                inner_keyword, _, inner_rest = nested.partition(" ")
                otherwise = [self._branch(inner_keyword, inner_rest)]  # `else if`: ends at the shared {{end}}
                return _Branch(keyword, pipeline, body, otherwise)
            if nested:
                raise TemplateError(f"unexpected {nested!r} after else")
            otherwise, end = self._list()
            if end != "end":
                raise TemplateError(f"expected {{{{end}}}} for {keyword}")
        elif end != "end":
            raise TemplateError(f"unexpected {{{{{end}}}}}")
        return _Branch(keyword, pipeline, body, otherwise)


def _pipeline(expr: str, allow_two: bool = False) -> _Pipeline:
    tokens = _tokens(expr)
    variables: list[str] = []
    declare = True
    for n, (kind, _value) in enumerate(tokens):
        if kind in ("declare", "assign"):
            names = [v for k, v in tokens[:n] if k != "punct"]
            if (
                not names
                or any(not v.startswith("$") or "." in v for v in names)
                or len(names) > (2 if allow_two else 1)
            ):
                raise TemplateError(f"bad variable declaration in {expr!r}")
            variables, tokens, declare = names, tokens[n + 1 :], kind == "declare"
            break
    pipeline, pos = _parse_commands(tokens, 0, expr)
    if pos != len(tokens):
        raise TemplateError(f"unexpected {tokens[pos][1]!r} in {expr!r}")
    pipeline.variables, pipeline.declare = variables, declare
    return pipeline


def _parse_commands(tokens: list[tuple[str, str]], pos: int, expr: str) -> tuple[_Pipeline, int]:
    commands: list[list[Any]] = [[]]
    while pos < len(tokens):
        kind, value = tokens[pos]
        if value == ")":
            break
        pos += 1
        if value == "|":
            commands.append([])
        elif value == "(":
            inner, pos = _parse_commands(tokens, pos, expr)
            if pos >= len(tokens) or tokens[pos][1] != ")":
                raise TemplateError(f"unclosed left paren in {expr!r}")
            pos += 1
            commands[-1].append(inner)
        elif kind in ("declare", "assign") or value == ",":
            raise TemplateError(f"unexpected {value!r} in {expr!r}")
        else:
            commands[-1].append((kind, value))
    if any(not command for command in commands):
        raise TemplateError(f"missing command in pipeline {expr!r}" if expr.strip() else "missing value for command")
    return _Pipeline(commands), pos


# -- evaluation ---------------------------------------------------------------------------------


class _State:
    def __init__(self, root: Any) -> None:
        self.scopes: list[dict[str, Any]] = [{"$": root}]

    def lookup(self, name: str) -> Any:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        raise TemplateError(f"undefined variable: {name}")

    def assign(self, name: str, value: Any, declare: bool) -> None:
        if declare:
            self.scopes[-1][name] = value
            return
        for scope in reversed(self.scopes):
            if name in scope:
                scope[name] = value
                return
        raise TemplateError(f"undefined variable: {name}")


def _field(value: Any, names: list[str], args: list[Any]) -> Any:
    for n, name in enumerate(names):
        if isinstance(value, dict):
            value = value.get(name, _MISSING)
        elif value is _MISSING or value is None:
            if value is None:
                raise TemplateError(f"nil pointer evaluating interface {{}}.{name}")
            return _MISSING
        else:
            raise TemplateError(f"can't evaluate field {name} in type {type(value).__name__}")
        if callable(value):
            value = value(*args) if n == len(names) - 1 else value()
            args = []
    if args:
        raise TemplateError(f"{'.'.join(names)} is not a method but has arguments")
    return value


def _argument(arg: Any, dot: Any, state: _State, extra: list[Any] | None = None) -> Any:
    if isinstance(arg, _Pipeline):
        return _run_pipeline(arg, dot, state)
    kind, value = arg
    if kind == "field":
        head, *names = value.split(".")
        base = state.lookup(head) if head.startswith("$") else dot
        if not names or names == [""]:
            if extra:
                raise TemplateError(f"can't give argument to non-function {value}")
            return base
        return _field(base, names, extra or [])
    if kind == "word" and value not in FUNCTIONS and value not in ("true", "false", "nil"):
        raise TemplateError(f'function "{value}" not defined')
    if extra:
        raise TemplateError(f"can't give argument to non-function {value}")
    if kind == "string":
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise TemplateError(f"bad string literal {value}") from None
    if kind == "raw":
        return value[1:-1]
    if kind == "char":
        return ord(ast.literal_eval(value))
    if kind == "number":
        try:
            return int(value, 0)
        except ValueError:
            return float(value)
    if kind == "word":
        if value in ("true", "false"):
            return value == "true"
        if value == "nil":
            return None
        if value in FUNCTIONS:
            return FUNCTIONS[value]()
        raise TemplateError(f'function "{value}" not defined')
    raise TemplateError(f"unexpected {value!r}")


_NOTHING = object()


def _run_pipeline(pipeline: _Pipeline, dot: Any, state: _State) -> Any:
    value: Any = _NOTHING
    for command in pipeline.commands:
        head, args = command[0], command[1:]
        if isinstance(head, tuple) and head[0] == "word" and head[1] in FUNCTIONS:
            values = [_argument(a, dot, state) for a in args]
            if value is not _NOTHING:
                values.append(value)
            try:
                value = FUNCTIONS[head[1]](*values)
            except TemplateError:
                raise
            except (TypeError, ValueError, KeyError, AttributeError) as exc:
                raise TemplateError(f"error calling {head[1]}: {exc}") from None
            continue
        extra = [_argument(a, dot, state) for a in args]
        if value is not _NOTHING:
            extra.append(value)
        value = _argument(head, dot, state, extra)
    for name in pipeline.variables[-1:] if pipeline.variables else ():
        state.assign(name, value, pipeline.declare)
    return value


def _execute(nodes: list[Any], dot: Any, state: _State, out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, _Action):
            value = _run_pipeline(node.pipeline, dot, state)
            if not node.pipeline.variables:
                out.append(value if isinstance(value, str) else go_format(value))
        else:
            _branch(node, dot, state, out)


def _branch(node: _Branch, dot: Any, state: _State, out: list[str]) -> None:
    state.scopes.append({})
    try:
        if node.kind == "range":
            variables = node.pipeline.variables
            node.pipeline.variables = []
            try:
                value = _run_pipeline(node.pipeline, dot, state)
            finally:
                node.pipeline.variables = variables
            if isinstance(value, dict):
                items = [(k, value[k]) for k in sorted(value)]
            elif isinstance(value, list | tuple):
                items = list(enumerate(value))
            elif isinstance(value, int) and not isinstance(value, bool):
                items = [(i, i) for i in range(value)]
            elif value is None or value is _MISSING:
                items = []
            else:
                raise TemplateError(f"range can't iterate over {go_format(value)}")
            for key, item in items:
                if len(variables) == 2:
                    state.scopes[-1][variables[0]], state.scopes[-1][variables[1]] = key, item
                elif variables:
                    state.scopes[-1][variables[0]] = item
                _execute(node.body, item, state, out)
            if not items:
                _execute(node.otherwise, dot, state, out)
            return
        value = _run_pipeline(node.pipeline, dot, state)
        if truth(value):
            _execute(node.body, value if node.kind == "with" else dot, state, out)
        else:
            _execute(node.otherwise, dot, state, out)
    finally:
        state.scopes.pop()


class Template:
    """A parsed template; :meth:`render` may be called once per row."""

    def __init__(self, text: str) -> None:
        self.nodes = _Parser(text).parse()

    def render(self, data: Any) -> str:
        out: list[str] = []
        _execute(self.nodes, data, _State(data), out)
        return "".join(out)


def compile_template(text: str) -> Template:
    return Template(text)


def render(template: str, data: Any) -> str:
    """Render ``template`` against ``data`` (a decoded JSON object)."""
    return Template(template).render(data)
