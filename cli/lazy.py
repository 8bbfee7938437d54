"""Build only the command that runs.

:class:`LazyGroup` is a typer group whose commands come from the table in
:mod:`dockyard.cli.commands`.  Until a command runs, the group holds a
:class:`Listing` for it: a command with a name, the summary, the help panel and no
parameters, which is all that ``--help`` listings, "did you mean" suggestions
and completion of command names need.  When click resolves a command to run it
(or to complete its options), the group imports the module named in the table,
lets typer turn the function into a click command, and keeps it.  This is
click's lazy-group pattern (``get_command`` on demand) done at
``resolve_command``, so that listing stays cheap.

:func:`plain_values` then spares the built command typer's pydantic-based value
coercion for the plain types a command line carries (see there).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import Enum
from importlib import import_module
from typing import Any

from typer.core import TyperCommand, TyperGroup
from typer.main import get_command_from_info, get_group_from_info
from typer.models import CommandInfo, TyperInfo

from .commands import Command, Group

__all__ = ["LazyGroup", "Listing", "PlainCommand", "plain_values"]


class _PlainHelp:
    """Click makes the ``--help`` option when it is first needed: give it plain values too."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            _install(option)
        return option


class PlainCommand(_PlainHelp, TyperCommand):
    """A typer command whose parameters use :class:`PlainValues` (see :func:`plain_values`),
    and whose boolean flags take docker's ``--flag=false`` (:mod:`dockyard.cli.flagspelling`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plain_values(self)

    #: ``"module:function"`` of the command (set by :meth:`LazyGroup.build`): its key in cli/examples.py
    target: str | None = None

    def format_help(self, ctx: Any, formatter: Any) -> None:
        if self.target is not None and self.epilog is None:
            from .examples import epilog

            self.epilog = epilog(self.target)
        super().format_help(ctx, formatter)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        from .flagspelling import FlagValueError, split_bool_values

        try:
            args, values = split_bool_values(self.get_params(ctx), args, ctx.allow_interspersed_args)
        except FlagValueError as exc:
            raise UsageError(str(exc), ctx) from None
        rest = super().parse_args(ctx, args)
        for param, value in values:
            ctx.params[param.name] = value
            ctx.set_parameter_source(param.name, ParameterSource.COMMANDLINE)
        return rest


class Listing(TyperCommand):
    """A command that is listed but not built yet."""

    def __init__(self, name: str, entry: Command | Group, rich_markup_mode: Any) -> None:
        super().__init__(
            name,
            help=entry.summary,
            hidden=getattr(entry, "hidden", False),
            rich_help_panel=entry.panel,
            rich_markup_mode=rich_markup_mode,
        )
        self.entry = entry


class LazyGroup(_PlainHelp, TyperGroup):
    """A typer group that builds a command from its table when the command runs.

    Commands registered on the typer app the usual way (``app.command()``) are
    built by typer up front and take precedence over table entries of the same name.
    """

    #: typer's default for tracebacks of command code, as the dockyard app uses it
    pretty_exceptions_short = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        plain_values(self)

    def add_lazy(self, entries: Mapping[str, Command | Group]) -> None:
        """List ``entries`` (in order) after the commands the group already has."""
        for name, entry in entries.items():
            if name not in self.commands:
                self.commands[name] = Listing(name, entry, self.rich_markup_mode)

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if isinstance(command, Listing) and name is not None:
            command = self.commands[name] = self.build(name, command.entry)
        return name, command, rest

    def build(self, name: str, entry: Command | Group) -> TyperCommand | TyperGroup:
        if isinstance(entry, Group):
            sub_app = getattr(import_module(f"dockyard.cli.{entry.module}"), entry.app)
            group = get_group_from_info(
                TyperInfo(sub_app, name=name, cls=LazyGroup, rich_help_panel=entry.panel),
                pretty_exceptions_short=self.pretty_exceptions_short,
                rich_markup_mode=self.rich_markup_mode,
                suggest_commands=self.suggest_commands,
            )
            assert isinstance(group, LazyGroup)
            group.add_lazy(entry.commands)
            return group
        module, _, function = entry.target.partition(":")
        info = CommandInfo(
            name=name,
            callback=getattr(import_module(f"dockyard.cli.{module}"), function),
            cls=PlainCommand,
            context_settings=entry.settings,
            hidden=entry.hidden,
            rich_help_panel=entry.panel,
        )
        command = get_command_from_info(
            info, pretty_exceptions_short=self.pretty_exceptions_short, rich_markup_mode=self.rich_markup_mode
        )
        if isinstance(command, PlainCommand):
            command.target = entry.target
        return command


try:  # typer 0.29 carries its own click
    from typer._click.core import ParameterSource
    from typer._click.exceptions import UsageError
except ImportError:
    from click.core import ParameterSource  # type: ignore[assignment]
    from click.exceptions import UsageError  # type: ignore[assignment]


# -- values without pydantic -------------------------------------------------------------------------

_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")


class _Defer(Exception):
    """Not a case :class:`PlainValues` decides: typer's own coercion does."""


class PlainValues:
    """Coerce a parameter's value of a plain type without pydantic.

    Typer (0.29 here) coerces each value through a pydantic ``TypeAdapter``,
    built the first time the parameter is processed, even when it was left unset.
    For ``dockyard ps`` that means importing pydantic and building four adapters:
    about 80 ms and 8 MB, most of the command.  The values a command line carries
    are simple: ``None`` for an unset parameter (typer answers ``None`` or ``()``
    before looking at the type), a string from argv, or the declared default.  For
    those, with ``str``, ``int``, ``bool`` and Enum parameters and lists of them,
    this gives typer's result; for anything else (a value that does not parse, a
    type not listed, a custom parser) it hands over to typer's own coercion, so
    errors and corner cases are typer's.  tests/cli/test_cli_lazy.py compares the
    two on the parameters of every command.
    """

    def __init__(self, annotation: Any) -> None:
        self.annotation = annotation
        self._typer: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        multiple = param.multiple or param.nargs == -1
        if value is None:
            return () if multiple else None
        try:
            if not multiple:
                return self._one(self.annotation, value, ctx)
            if isinstance(value, str) or not isinstance(value, (list, tuple)):
                raise _Defer
            item_types = getattr(self.annotation, "__args__", ())
            if len(item_types) != 1:
                raise _Defer
            return [self._one(item_types[0], item, ctx) for item in value]
        except _Defer:
            return self._typer_coercion(param).coerce(value, param, ctx)

    @staticmethod
    def _one(annotation: Any, value: Any, ctx: Any) -> Any:
        if annotation is str and isinstance(value, str):
            return value
        if annotation is bool and isinstance(value, bool):
            return value
        if annotation is int:
            if type(value) is int:
                return value
            if isinstance(value, str) and _INT.fullmatch(value):
                return int(value)
        if isinstance(annotation, type) and issubclass(annotation, Enum) and ctx.token_normalize_func is None:
            if isinstance(value, annotation):
                return value
            for member in annotation:
                if isinstance(value, str) and value == str(member.value):
                    return member
        raise _Defer

    def _typer_coercion(self, param: Any) -> Any:
        if self._typer is None:
            self._typer = _typer_build_runtime_param(param.type_descriptor)
        return self._typer


def _plain(info: Any) -> bool:
    """Whether :class:`PlainValues` may stand in for typer on a parameter: not when
    typer validates more than the type (a custom parser, a range)."""
    return all(getattr(info, name, None) is None for name in ("parser", "min", "max"))


def plain_values(command: Any) -> None:
    """Give the typer parameters of ``command`` :class:`PlainValues` coercion.

    A typer without the private hooks this relies on (``_runtime_param``,
    ``type_descriptor``, ``build_runtime_param``) keeps its own coercion: slower,
    never wrong.
    """
    for param in getattr(command, "params", ()):
        _install(param)


def _install(param: Any) -> None:
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None or getattr(param, "_runtime_param", False) is not None or not _TYPER_FALLBACK:
        return
    if _plain(descriptor.parameter_info):
        param._runtime_param = PlainValues(descriptor.annotation)


try:
    from typer._coercion import build_runtime_param as _typer_build_runtime_param  # PlainValues' fallback
except ImportError:  # a typer without it keeps its own coercion everywhere
    _TYPER_FALLBACK = False
else:
    _TYPER_FALLBACK = True
