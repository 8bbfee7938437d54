""".dockerignore matching (moby's patternmatcher cases) and its application to a tree."""

from __future__ import annotations

import pytest

from dockyard.build.dockerignore import PatternMatcher, apply_to_tree, go_clean, read_patterns


def ignored(patterns: list[str], path: str) -> bool:
    return PatternMatcher(read_patterns("\n".join(patterns))).matches(path)


@pytest.mark.parametrize(
    "patterns, path, expected",
    [
        (["*.log"], "a.log", True),
        (["*.log"], "dir/a.log", False),  # * does not cross /
        (["**/*.log"], "dir/sub/a.log", True),
        (["**/*.log"], "a.log", True),
        (["dir"], "dir/file", True),  # a directory excludes what is below it
        (["dir/"], "dir/file", True),
        (["/dir"], "dir/file", True),
        (["./dir"], "dir/file", True),
        (["dir/*"], "dir/a/b", True),
        (["dir/**"], "dir/a/b", True),
        (["dir/**"], "dirx/a", False),
        (["a?c"], "abc", True),
        (["a?c"], "a/c", False),
        (["[a-c].txt"], "b.txt", True),
        (["[a-c].txt"], "d.txt", False),
        (["*", "!keep"], "keep", False),
        (["*", "!keep"], "other", True),
        (["*.md", "!README.md"], "README.md", False),
        (["*.md", "!README.md", "README.md"], "README.md", True),  # the last match wins
        (["dir", "!dir/keep"], "dir/keep", False),
        (["dir", "!dir/keep"], "dir/other", True),
        (["**"], "anything/at/all", True),
        (["# comment", ""], "# comment", False),
        (["a\\*b"], "a*b", True),
        (["a\\*b"], "axb", False),
        (["foo.txt"], "sub/foo.txt", False),
        (["**/foo"], "x/y/foo", True),
        (["**/foo"], "x/yfoo", False),
        (["a/../b"], "b", True),
        (["file.(x)"], "file.(x)", True),
    ],
)
def test_patterns(patterns, path, expected):
    assert ignored(patterns, path) is expected


def test_read_patterns_cleans():
    assert read_patterns("# c\n\n  /a/b/  \n!  ./c\n*.x\n") == ["a/b", "!c", "*.x"]


def test_go_clean():
    assert go_clean("") == "."
    assert go_clean("a//b/./c/..") == "a/b"
    assert go_clean("/../a") == "/a"
    assert go_clean("../a") == "../a"


def test_apply_to_tree(tmp_path):
    for name in ("keep.txt", "drop.log", "dir/a.log", "dir/keep/x", "dir/gone/y", "node_modules/m/i.js", "Dockerfile"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
    matcher = PatternMatcher(read_patterns("*.log\ndir/*\n!dir/keep\nnode_modules\nDockerfile\n"))
    apply_to_tree(tmp_path, matcher)
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert left == ["dir", "dir/keep", "dir/keep/x", "keep.txt"]
