""".dockerignore: moby's ``patternmatcher`` semantics, exactly.

* one pattern a line; blank lines and lines starting with ``#`` are skipped;
* ``!pattern`` re-includes what an earlier pattern excluded (the last
  matching pattern wins);
* patterns are cleaned like Go's ``filepath.Clean`` and a leading ``/`` is
  dropped, so ``/foo``, ``./foo`` and ``foo`` are the same;
* ``*`` matches within one path component, ``?`` one character other than
  ``/``, ``[...]`` a class, ``**`` any number of components (also none), and
  ``\\`` escapes;
* a pattern that matches a directory excludes everything below it.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import stat
from pathlib import Path

__all__ = ["Pattern", "PatternMatcher", "go_clean", "read_patterns", "apply_to_tree", "glob_regex"]


def go_clean(path: str) -> str:
    """Go's ``filepath.Clean`` for slash paths."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for comp in path.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(comp)
    out = "/".join(parts)
    if rooted:
        return "/" + out
    return out or "."


_ESCAPE = set(".+()|{}$^")


def glob_regex(pattern: str, double_star: bool = True) -> tuple[str, str]:
    """(regex, match type) for a pattern; types: exact, prefix, suffix, regexp."""
    out = "^"
    kind = "exact"
    i, n = 0, len(pattern)
    first = True
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if double_star and i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1
                if i >= n:
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        out += ".*"
                        kind = "regexp"
                else:
                    out += "(.*/)?"
                    kind = "regexp"
                if first:
                    kind = "suffix"
            else:
                out += "[^/]*"
                kind = "regexp"
        elif ch == "?":
            out += "[^/]"
            kind = "regexp"
        elif ch in _ESCAPE:
            out += "\\" + ch
        elif ch == "\\":
            if i < n:
                out += "\\" + pattern[i]
                i += 1
                kind = "regexp"
            else:
                out += "\\\\"
        elif ch in "[]":
            out += ch
            kind = "regexp"
        else:
            out += ch
        first = False
    return out + "$", kind


class Pattern:
    def __init__(self, text: str) -> None:
        self.exclusion = text.startswith("!")
        self.cleaned = text[1:] if self.exclusion else text
        self.source = text
        regex, self.kind = glob_regex(self.cleaned)
        try:
            self.regex = re.compile(regex, re.S)
        except re.error as exc:
            raise ValueError(f"invalid .dockerignore pattern {text!r}: {exc}") from None

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.cleaned
        if self.kind == "prefix":
            return path.startswith(self.cleaned[:-2])
        if self.kind == "suffix":
            suffix = self.cleaned[2:]
            if path.endswith(suffix):
                return True
            return bool(suffix) and suffix[0] == "/" and path == suffix[1:]
        return self.regex.match(path) is not None

    def __repr__(self) -> str:
        return f"Pattern({self.source!r})"


def read_patterns(text: str) -> list[str]:
    """The patterns of a .dockerignore file, cleaned as moby's ``dockerignore.ReadAll``."""
    patterns = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


class PatternMatcher:
    def __init__(self, patterns: list[str]) -> None:
        self.patterns = [Pattern(p) for p in patterns if p not in ("", "!")]
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, path: str) -> bool:
        """True if ``path`` (relative to the context, slash-separated) is ignored."""
        path = go_clean(path)
        matched = False
        parent = posixpath.dirname(path) or "."
        parent_dirs = parent.split("/")
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            match = pattern.match(path)
            if not match and parent != ".":
                for i in range(len(parent_dirs)):
                    if pattern.match("/".join(parent_dirs[: i + 1])):
                        match = True
                        break
            if match:
                matched = not pattern.exclusion
        return matched


def apply_to_tree(root: Path, matcher: PatternMatcher) -> int:
    """Delete what ``matcher`` ignores below ``root``; returns how many entries went.

    A directory that is ignored but holds re-included (``!``) entries stays,
    with only those entries, as the docker CLI would have sent it.
    """
    if not matcher:
        return 0
    removed = 0

    def walk(directory: str, rel: str) -> bool:
        """Returns True if anything is left in ``directory``."""
        nonlocal removed
        left = False
        with os.scandir(directory) as it:
            entries = list(it)
        for entry in entries:
            child_rel = f"{rel}/{entry.name}" if rel else entry.name
            ignored = matcher.matches(child_rel)
            is_dir = entry.is_dir(follow_symlinks=False)
            if is_dir:
                if ignored and not matcher.has_exclusions:
                    shutil.rmtree(entry.path)
                    removed += 1
                    continue
                kept_inside = walk(entry.path, child_rel)
                if ignored and not kept_inside:
                    os.rmdir(entry.path)
                    removed += 1
                    continue
                left = True
            elif ignored:
                os.unlink(entry.path)
                removed += 1
            else:
                left = True
        return left

    if stat.S_ISDIR(os.lstat(root).st_mode):
        walk(os.fspath(root), "")
    return removed
