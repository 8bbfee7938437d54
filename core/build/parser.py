"""The Dockerfile format: directives, comments, continuations, instructions, stages.

:func:`parse` turns the text into a :class:`Dockerfile` (global ``ARG`` s and
stages of :class:`Instruction` s) or raises :class:`DockerfileError`, which
names the line and the instruction; nothing is built from a file that does not
parse.  Variables are *not* substituted here: that needs the build's
environment, see :mod:`dockyard.build.shell` and the builder.

Rules follow moby's parser (``buildkit/frontend/dockerfile/parser``):

* parser directives (``# escape=``, ``# syntax=``) only before anything else;
* a line whose first non-blank character is ``#`` is a comment, also in the
  middle of a continued instruction; so are blank lines there;
* an instruction continues while its line ends with the escape character
  (``\\`` or the one ``# escape=`` chose) and optional blanks;
* instruction names are case-insensitive; exec (JSON) forms are JSON arrays of
  strings; flags (``--from=``, ``--chown=`` ...) come first.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from dockyard.build.shell import ShellError, split_keep_quotes
from dockyard.errors import InvalidParameter

__all__ = ["Dockerfile", "DockerfileError", "Instruction", "Stage", "parse", "parse_pairs", "INSTRUCTIONS"]

INSTRUCTIONS = {
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
}
#: flags each instruction accepts (values are strings; booleans are "true")
FLAGS = {
    "FROM": {"platform"},
    "COPY": {"from", "chown", "chmod"},
    "ADD": {"chown", "chmod"},
    "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"},
}
#: instructions whose argument may be a JSON array
JSON_FORMS = {"RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"}
DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
KNOWN_DIRECTIVES = {"escape", "syntax", "check"}
STAGE_NAME = re.compile(r"^[a-z][a-z0-9_.-]*\Z")
FLAG = re.compile(r"^--([a-zA-Z][a-zA-Z0-9-]*)(?:=(\S*))?(?:\s+|$)")


class DockerfileError(InvalidParameter):
    """A Dockerfile that cannot be built, with where and why."""

    def __init__(self, line: int, message: str, instruction: str = "") -> None:
        self.line = line
        self.instruction = instruction
        super().__init__(f"Dockerfile parse error line {line}: {message}")


@dataclass
class Instruction:
    keyword: str  #: upper case: RUN, COPY ...
    rest: str  #: the argument text after the flags (continuations joined)
    line: int  #: first line of the instruction
    original: str  #: the instruction as written (continuations joined), for "Step n/m : ..."
    flags: dict[str, str] = field(default_factory=dict)
    json_args: list[str] | None = None  #: exec (JSON) form
    trigger: "Instruction | None" = None  #: ONBUILD's instruction
    escape: str = "\\"  #: the file's escape character

    @property
    def words(self) -> list[str]:
        """The arguments split like moby does before substitution (JSON form as is)."""
        if self.json_args is not None:
            return list(self.json_args)
        return split_keep_quotes(self.rest, self.escape)

    def error(self, message: str) -> DockerfileError:
        return DockerfileError(self.line, message, self.keyword)


@dataclass
class Stage:
    index: int
    name: str  #: lower-cased ``AS`` name, "" if none
    base: str  #: the image reference as written (may hold $ARGs)
    source: Instruction  #: the FROM instruction
    commands: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    escape: str
    directives: dict[str, str]
    meta_args: list[Instruction]
    stages: list[Stage]

    def stage_index(self, name: str) -> int | None:
        for stage in self.stages:
            if stage.name and stage.name == name.lower():
                return stage.index
        return None


def _directives(lines: list[str]) -> tuple[dict[str, str], int]:
    """Parser directives at the top; returns them and the index of the first other line."""
    found: dict[str, str] = {}
    for index, line in enumerate(lines):
        match = DIRECTIVE.match(line.strip())
        if not match or match.group(1).lower() not in KNOWN_DIRECTIVES:
            return found, index
        name = match.group(1).lower()
        if name in found:
            raise DockerfileError(index + 1, f"only one {name} parser directive can be used")
        found[name] = match.group(2)
    return found, len(lines)


def _ends_with_escape(text: str, escape: str) -> bool:
    stripped = text.rstrip(" \t")
    return stripped.endswith(escape)


def _logical_lines(lines: list[str], start: int, escape: str) -> list[tuple[int, str]]:
    """(first line number, joined text) per instruction; comments and blanks dropped."""
    result: list[tuple[int, str]] = []
    i, n = start, len(lines)
    while i < n:
        stripped = lines[i].lstrip(" \t")
        if not stripped.strip() or stripped.startswith("#"):
            i += 1
            continue
        first = i + 1
        text = stripped
        while _ends_with_escape(text, escape):
            text = text.rstrip(" \t")[:-1]
            i += 1
            while i < n and (not lines[i].strip() or lines[i].lstrip(" \t").startswith("#")):
                i += 1
            if i >= n:
                break
            text += lines[i]
        i += 1
        text = text.strip()
        if text:
            result.append((first, text))
    return result


def _split_flags(keyword: str, rest: str, line: int) -> tuple[dict[str, str], str]:
    flags: dict[str, str] = {}
    allowed = FLAGS.get(keyword, set())
    while rest.startswith("--"):
        match = FLAG.match(rest)
        if not match:
            break
        name = match.group(1).lower()
        if name not in allowed:
            if keyword == "RUN" and name in ("mount", "network", "security"):
                raise DockerfileError(
                    line, f"RUN --{name} needs BuildKit; this is the classic builder (DOCKER_BUILDKIT=0)", keyword
                )
            raise DockerfileError(line, f"{keyword}: unknown flag: --{name}", keyword)
        if name in flags:
            raise DockerfileError(line, f"{keyword}: duplicate flag specified: --{name}", keyword)
        flags[name] = match.group(2) if match.group(2) is not None else "true"
        rest = rest[match.end() :]
    return flags, rest


def _json_form(keyword: str, rest: str, line: int) -> list[str] | None:
    text = rest.strip()
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    # "[ -f x ] && ..." is a shell command; '["...' can only be an attempt at the exec form
    if text.startswith(('["', "['")) or re.search(r'"\s*,\s*"', text):
        raise DockerfileError(
            line,
            f"{keyword}: invalid JSON array (exec form): {text} (use double quotes, "
            "commas between strings and a closing bracket, or write the shell form)",
            keyword,
        )
    return None


def parse_pairs(instruction: Instruction, escape: str) -> list[tuple[str, str]]:
    """KEY=VALUE words of ENV / LABEL (values still to be processed), or the legacy ``KEY value``."""
    keyword = instruction.keyword
    try:
        words = split_keep_quotes(instruction.rest, escape)
    except ShellError as exc:
        raise instruction.error(f"{keyword}: {exc}") from None
    if not words:
        raise instruction.error(f"{keyword} requires at least one argument")
    if "=" not in words[0]:
        # legacy form: the first word is the name, everything after it the value
        if keyword == "LABEL" or len(words) < 2:
            if keyword == "ENV" and len(words) < 2:
                raise instruction.error("ENV must have two arguments (ENV name value, or ENV name=value ...)")
            raise instruction.error(
                f"{keyword}: syntax error - can't find = in {words[0]!r}. Must be of the form: name=value"
            )
        name = words[0]
        value = instruction.rest.strip()[len(name) :].strip()
        return [(name, value)]
    pairs = []
    for word in words:
        name, sep, value = word.partition("=")
        if not sep:
            raise instruction.error(
                f"{keyword}: syntax error - can't find = in {word!r}. Must be of the form: name=value"
            )
        if not name:
            raise instruction.error(f"{keyword} names can not be blank")
        pairs.append((name, value))
    return pairs


def _instruction(line: int, text: str, escape: str, nested: bool = False) -> Instruction:
    match = re.match(r"^(\S+)(?:\s+(.*))?$", text, re.S)
    assert match
    keyword = match.group(1).upper()
    rest = (match.group(2) or "").strip()
    if keyword not in INSTRUCTIONS:
        raise DockerfileError(line, f"unknown instruction: {match.group(1)}")
    flags, rest = _split_flags(keyword, rest, line)
    instr = Instruction(keyword=keyword, rest=rest, line=line, original=text, flags=flags, escape=escape)
    if keyword in JSON_FORMS:
        instr.json_args = _json_form(keyword, rest, line)
    _check(instr, escape, nested)
    return instr


def _check(instr: Instruction, escape: str, nested: bool) -> None:
    keyword, rest = instr.keyword, instr.rest
    words: list[str] = []
    if keyword not in ("RUN", "CMD", "ENTRYPOINT", "USER", "WORKDIR", "MAINTAINER", "ONBUILD", "ENV", "LABEL"):
        try:  # the shell forms are the shell's business
            words = instr.json_args if instr.json_args is not None else split_keep_quotes(rest, escape)
        except ShellError as exc:
            raise instr.error(f"{keyword}: {exc}") from None
    if keyword == "FROM":
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
            raise instr.error("FROM requires either one or three arguments (FROM image [AS name])")
        if len(words) == 3 and not STAGE_NAME.match(words[2].lower()):
            raise instr.error(
                f"invalid name for build stage: {words[2]!r}, name can't start with a number or contain symbols"
            )
    elif keyword in ("COPY", "ADD"):
        if len(words) < 2:
            raise instr.error(
                f"{keyword} requires at least two arguments, but only one was provided. "
                "Destination could not be determined."
            )
    elif keyword == "RUN":
        if instr.json_args is None and not rest:
            raise instr.error("RUN requires at least one argument")
    elif keyword in ("CMD", "ENTRYPOINT"):
        if instr.json_args is None and not rest:
            raise instr.error(f"{keyword} requires at least one argument")
    elif keyword == "SHELL":
        if instr.json_args is None:
            raise instr.error("SHELL requires the arguments to be in JSON form")
        if not instr.json_args:
            raise instr.error("SHELL requires at least one argument")
    elif keyword in ("ENV", "LABEL"):
        parse_pairs(instr, escape)
    elif keyword == "ARG":
        if not words:
            raise instr.error("ARG requires at least one argument")
        for word in words:
            if word.startswith("="):
                raise instr.error("ARG names can not be blank")
    elif keyword in ("USER", "WORKDIR", "STOPSIGNAL", "MAINTAINER"):
        if not rest:
            raise instr.error(f"{keyword} requires exactly one argument")
        if keyword == "STOPSIGNAL" and len(words) != 1:
            raise instr.error("STOPSIGNAL requires exactly one argument")
    elif keyword in ("EXPOSE", "VOLUME"):
        if not words:
            raise instr.error(f"{keyword} requires at least one argument")
    elif keyword == "ONBUILD":
        if nested:
            raise instr.error("ONBUILD ONBUILD isn't allowed (chaining ONBUILD via ONBUILD ONBUILD)")
        if not rest:
            raise instr.error("ONBUILD requires at least one argument")
        inner = _instruction(instr.line, rest, escape, nested=True)
        if inner.keyword in ("ONBUILD", "FROM", "MAINTAINER"):
            raise instr.error(f"{inner.keyword} isn't allowed as an ONBUILD trigger")
        instr.trigger = inner
    elif keyword == "HEALTHCHECK":
        if not words:
            raise instr.error("HEALTHCHECK requires an argument (NONE, or CMD <command>)")
        kind = words[0].upper()
        if kind == "NONE":
            if len(words) > 1 or instr.flags:
                raise instr.error("HEALTHCHECK NONE takes no other arguments")
        elif kind == "CMD":
            after = rest.strip()[3:].strip()
            if not after:
                raise instr.error("HEALTHCHECK CMD requires a command")
        else:
            raise instr.error(f"HEALTHCHECK: unknown type {words[0]!r} (use CMD or NONE)")


def parse(text: str | bytes) -> Dockerfile:
    """Parse a Dockerfile; raise :class:`DockerfileError` naming the line if it is malformed."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DockerfileError(text[: exc.start].count(b"\n") + 1, "the Dockerfile is not valid UTF-8") from None
    text = text.removeprefix("\ufeff")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    directives, start = _directives(lines)
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise DockerfileError(1, f"invalid escape token {escape!r} does not match ` or \\")
    meta_args: list[Instruction] = []
    stages: list[Stage] = []
    names: set[str] = set()
    for line, joined in _logical_lines(lines, start, escape):
        instr = _instruction(line, joined, escape)
        if instr.keyword == "FROM":
            words = instr.words
            name = words[2].lower() if len(words) == 3 else ""
            if name:
                if name in names:
                    raise instr.error(f"duplicate name {name}")
                names.add(name)
            stages.append(Stage(index=len(stages), name=name, base=words[0], source=instr))
        elif not stages:
            if instr.keyword != "ARG":
                raise instr.error(
                    f"{instr.keyword}: no build stage in current context: a Dockerfile must begin "
                    "with FROM (only ARG, comments and parser directives may come before it)"
                )
            meta_args.append(instr)
        else:
            stages[-1].commands.append(instr)
    if not stages:
        raise DockerfileError(1, "the Dockerfile has no FROM instruction (file with no instructions or only ARG)")
    return Dockerfile(escape=escape, directives=directives, meta_args=meta_args, stages=stages)
