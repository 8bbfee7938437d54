"""Docker's spellings of boolean flags: ``--flag=true|false`` and ``-d=false``.

The docker CLI parses flags with pflag, where a boolean flag takes an optional
``=VALUE`` (``attach --sig-proxy=false``, ``run -d=true``, ``images -a=false``:
the guidebook's help texts show them in that form), and single-dash letters
combine (``-itd``; with ``-it=false`` the value belongs to the last letter).
Click combines letters already, but refuses a value on a flag.  Before click
parses, :func:`split_bool_values` takes those values out of the arguments and
returns them, so the command can set them after parsing
(:class:`~dockyard.cli.lazy.PlainCommand` does).

Arguments after ``--``, and for ``run``/``create``/``exec`` everything after the
first positional argument (the command's own argv), are never touched.
"""

from __future__ import annotations

from typing import Any

__all__ = ["parse_bool", "split_bool_values"]

# strconv.ParseBool, which pflag's bool flags use
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


class FlagValueError(ValueError):
    pass


def parse_bool(value: str, flag: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise FlagValueError(
        f'invalid argument "{value}" for "{flag}" flag: strconv.ParseBool: parsing "{value}": invalid syntax'
    )


def _options(params: list[Any]) -> dict[str, Any]:
    by_name: dict[str, Any] = {}
    for param in params:
        if getattr(param, "param_type_name", "") != "option":
            continue
        for name in (*param.opts, *param.secondary_opts):
            by_name[name] = param
    return by_name


def _is_bool_flag(param: Any) -> bool:
    return bool(getattr(param, "is_bool_flag", False))


def _takes_value(param: Any) -> bool:
    return not getattr(param, "is_flag", False) and not getattr(param, "count", False)


def split_bool_values(
    params: list[Any], args: list[str], interspersed: bool = True
) -> tuple[list[str], list[tuple[Any, bool]]]:
    """Take ``=VALUE`` off the boolean flags in ``args``.

    Returns the arguments click can parse (``--detach=true`` becomes ``--detach``,
    ``--detach=false`` disappears, ``-it=false`` becomes ``-i``) and, in order of
    appearance, each (parameter, value) given that way.  A secondary name
    (``--no-sig-proxy=true``) stands for the opposite value of its flag.
    Raises :class:`FlagValueError` for a value that is not a boolean.
    """
    options = _options(params)
    out: list[str] = []
    values: list[tuple[Any, bool]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            out += args[i - 1 :]
            break
        if arg.startswith("--"):
            name, eq, raw = arg.partition("=")
            param = options.get(name)
            if param is not None and eq and _is_bool_flag(param):
                value = parse_bool(raw, name)
                negated = name in param.secondary_opts
                values.append((param, value != negated))
                if value:
                    out.append(name)  # still a flag click sees, so its value source is the command line
                continue
            out.append(arg)
            if param is not None and not eq and _takes_value(param) and i < len(args):
                out.append(args[i])
                i += 1
            continue
        if arg.startswith("-") and len(arg) > 1:
            letters, eq, raw = arg[1:].partition("=")
            params = [options.get("-" + letter) for letter in letters]
            if eq and params and all(p is not None and _is_bool_flag(p) for p in params):
                last = params[-1]
                value = parse_bool(raw, f"-{letters[-1]}, {max(last.opts, key=len)}")
                values.append((last, value))
                kept = letters if value else letters[:-1]
                if kept:
                    out.append("-" + kept)
                continue
            out.append(arg)
            # a value-taking letter consumes the rest of the word, or the next argument
            for n, param in enumerate(params):
                if param is None:
                    break
                if _takes_value(param):
                    if n == len(letters) - 1 and not eq and i < len(args):
                        out.append(args[i])
                        i += 1
                    break
            continue
        out.append(arg)  # a positional argument
        if not interspersed:
            out += args[i:]
            break
    return out, values
