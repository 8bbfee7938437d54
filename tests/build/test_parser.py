"""The Dockerfile parser and word processing (no daemon)."""

from __future__ import annotations

import pytest

from dockyard.build.parser import DockerfileError, parse, parse_pairs
from dockyard.build.shell import ShellError, process_word, process_words, split_keep_quotes


def only_stage(text: str):
    df = parse(text)
    assert len(df.stages) == 1
    return df.stages[0]


# -- instructions ------------------------------------------------------------------------------------


def test_every_instruction_parses():
    text = """\
FROM busybox:latest AS base
RUN echo hi
RUN ["echo", "exec"]
CMD ["cat", "/x"]
ENTRYPOINT /bin/sh -c
ENV A=1 B="two words"
ENV LEGACY value with spaces
ARG X
ARG Y=default
ADD --chown=1:2 a.tar /dst/
COPY --from=base --chown=nobody --chmod=644 /a /b/
EXPOSE 80 53/udp
VOLUME ["/data", "/logs"]
VOLUME /single
USER nobody:nogroup
WORKDIR /app
LABEL a=b "c d"="e"
MAINTAINER someone <a@b>
ONBUILD RUN echo trigger
STOPSIGNAL SIGKILL
HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://x/ || exit 1
HEALTHCHECK NONE
SHELL ["/bin/bash", "-c"]
"""
    stage = only_stage(text)
    assert stage.name == "base" and stage.base == "busybox:latest"
    keywords = [i.keyword for i in stage.commands]
    assert keywords == [
        "RUN",
        "RUN",
        "CMD",
        "ENTRYPOINT",
        "ENV",
        "ENV",
        "ARG",
        "ARG",
        "ADD",
        "COPY",
        "EXPOSE",
        "VOLUME",
        "VOLUME",
        "USER",
        "WORKDIR",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "STOPSIGNAL",
        "HEALTHCHECK",
        "HEALTHCHECK",
        "SHELL",
    ]
    by = stage.commands
    assert by[0].json_args is None and by[0].rest == "echo hi"
    assert by[1].json_args == ["echo", "exec"]
    assert by[2].json_args == ["cat", "/x"]
    assert by[3].json_args is None
    assert by[8].flags == {"chown": "1:2"} and by[8].words == ["a.tar", "/dst/"]
    assert by[9].flags == {"from": "base", "chown": "nobody", "chmod": "644"}
    assert by[11].json_args == ["/data", "/logs"]
    assert by[17].trigger is not None and by[17].trigger.keyword == "RUN"
    assert by[19].flags == {"interval": "5s", "retries": "3"}
    assert by[21].json_args == ["/bin/bash", "-c"]
    assert parse_pairs(by[4], "\\") == [("A", "1"), ("B", '"two words"')]
    assert parse_pairs(by[5], "\\") == [("LEGACY", "value with spaces")]


def test_instruction_names_are_case_insensitive():
    stage = only_stage("from busybox\nrun echo a\nCoPy a b\n")
    assert [i.keyword for i in stage.commands] == ["RUN", "COPY"]


def test_continuations_and_comments():
    text = "FROM busybox\nRUN echo a \\\n    b \\\n# a comment inside\n\n    c\nRUN x\n"
    stage = only_stage(text)
    run = stage.commands[0]
    assert run.rest == "echo a     b     c"
    assert run.line == 2
    assert stage.commands[1].line == 7
    assert run.original == "RUN echo a     b     c"


def test_continuation_with_trailing_blanks():
    stage = only_stage("FROM busybox\nRUN echo a \\   \n b\n")
    assert stage.commands[0].rest == "echo a  b"


def test_escape_directive():
    text = "# escape=`\nFROM busybox\nRUN echo a `\n  b\nCOPY c:\\dir\\file /x\n"
    df = parse(text)
    assert df.escape == "`"
    assert df.stages[0].commands[0].rest == "echo a   b"
    assert df.stages[0].commands[1].words == ["c:\\dir\\file", "/x"]


def test_directive_only_at_the_top():
    text = "FROM busybox\n# escape=`\nRUN echo a \\\n b\n"
    df = parse(text)
    assert df.escape == "\\"
    assert df.stages[0].commands[0].rest == "echo a  b"


def test_syntax_directive_is_accepted_and_duplicates_refused():
    assert parse("# syntax=docker/dockerfile:1\nFROM busybox\n").directives == {"syntax": "docker/dockerfile:1"}
    with pytest.raises(DockerfileError, match="only one escape"):
        parse("# escape=`\n# escape=\\\nFROM busybox\n")
    with pytest.raises(DockerfileError, match="invalid escape token"):
        parse("# escape=x\nFROM busybox\n")


def test_stages_and_meta_args():
    df = parse("ARG V=1\nFROM busybox:$V AS one\nRUN a\nFROM one\nFROM scratch AS Last\n")
    assert [a.rest for a in df.meta_args] == ["V=1"]
    assert [(s.index, s.name, s.base) for s in df.stages] == [
        (0, "one", "busybox:$V"),
        (1, "", "one"),
        (2, "last", "scratch"),
    ]
    assert df.stage_index("LAST") == 2


def test_crlf_and_bom():
    stage = only_stage("\ufeffFROM busybox\r\nRUN echo a \\\r\n b\r\n")
    assert stage.commands[0].rest == "echo a  b"


def test_shell_form_starting_with_bracket_is_shell():
    stage = only_stage('FROM busybox\nRUN [ -f /etc/passwd ] && echo yes\nRUN [ "$A" = x ] || true\n')
    assert stage.commands[0].json_args is None
    assert stage.commands[1].json_args is None


# -- errors name the line and the instruction ------------------------------------------------------------


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ("FROM busybox\nRUNN echo\n", 2, "unknown instruction: RUNN"),
        ("RUN echo\n", 1, "no build stage"),
        ("# just a comment\n", 1, "no FROM"),
        ("", 1, "no FROM"),
        ('FROM busybox\n\nCMD ["a", b]\n', 3, "invalid JSON array"),
        ("FROM busybox\nRUN ['echo', 'x']\n", 2, "invalid JSON array"),
        ("FROM busybox\nCOPY onlyone\n", 2, "COPY requires at least two arguments"),
        ("FROM busybox\nADD\n", 2, "ADD requires at least two arguments"),
        ("FROM a b\n", 1, "FROM requires either one or three arguments"),
        ("FROM a AS 1x\n", 1, "invalid name for build stage"),
        ("FROM a AS x\nFROM b AS x\n", 2, "duplicate name x"),
        ("FROM busybox\nCOPY --frm=x a b\n", 2, "unknown flag: --frm"),
        ("FROM busybox\nRUN --mount=type=cache,target=/x true\n", 2, "needs BuildKit"),
        ("FROM busybox\nENV\n", 2, "ENV requires at least one argument"),
        ("FROM busybox\nENV A\n", 2, "ENV must have two arguments"),
        ("FROM busybox\nLABEL a=b c\n", 2, "can't find = in 'c'"),
        ("FROM busybox\nENV =x\n", 2, "names can not be blank"),
        ("FROM busybox\nSHELL /bin/bash -c\n", 2, "SHELL requires the arguments to be in JSON form"),
        ("FROM busybox\nONBUILD ONBUILD RUN x\n", 2, "ONBUILD ONBUILD isn't allowed"),
        ("FROM busybox\nONBUILD FROM x\n", 2, "FROM isn't allowed as an ONBUILD trigger"),
        ("FROM busybox\nHEALTHCHECK WHAT\n", 2, "HEALTHCHECK"),
        ("FROM busybox\nWORKDIR\n", 2, "WORKDIR requires exactly one argument"),
        ("FROM busybox\nRUN echo 'unterminated\nENV A=\"x\n", 3, "unterminated quote"),
        ("FROM busybox\nRUN a \\\n b \\\n c\nBOGUS\n", 5, "unknown instruction: BOGUS"),
    ],
)
def test_errors_name_the_line(text, line, fragment):
    with pytest.raises(DockerfileError) as info:
        parse(text)
    assert info.value.line == line
    assert f"line {line}:" in str(info.value)
    assert fragment in str(info.value)


def test_error_is_a_400():
    with pytest.raises(DockerfileError) as info:
        parse("FROM busybox\nNOPE\n")
    assert info.value.status == 400


# -- word processing and substitution -------------------------------------------------------------

ENV = ["A=apple", "EMPTY=", "SPACE=a b"]


@pytest.mark.parametrize(
    "word, expected",
    [
        ("$A", "apple"),
        ("${A}", "apple"),
        ("x${A}y", "xappley"),
        ("$UNSET", ""),
        ("${UNSET:-dflt}", "dflt"),
        ("${EMPTY:-dflt}", "dflt"),
        ("${EMPTY-dflt}", ""),
        ("${UNSET-dflt}", "dflt"),
        ("${A:-dflt}", "apple"),
        ("${A:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET:+alt}", ""),
        ("${UNSET:-$A}", "apple"),
        ("'$A'", "$A"),
        ('"$A"', "apple"),
        ('"a\\"b"', 'a"b'),
        ('"a\\$A"', "a$A"),
        ("\\$A", "$A"),
        ('"\\n"', "\\n"),
        ("a\\ b", "a b"),
        ("$", "$"),
        ("$1", ""),
        ("100%", "100%"),
        ('"${SPACE}"', "a b"),
    ],
)
def test_process_word(word, expected):
    assert process_word(word, ENV) == expected


def test_process_words_splits_unquoted_blanks_only():
    assert process_words('a "b c" d\\ e $SPACE', ENV) == ["a", "b c", "d e", "a b"]
    assert process_words("  ", ENV) == []


def test_escape_backtick():
    assert process_word("a`$A", ENV, escape="`") == "a$A"
    assert process_word("c:\\dir", ENV, escape="`") == "c:\\dir"


@pytest.mark.parametrize(
    "word, fragment",
    [
        ("${A", "missing '}'"),
        ("${}", "missing variable name"),
        ("${A!x}", "unsupported modifier"),
        ("'open", "single-quote"),
        ('"open', "double-quote"),
        ("${UNSET:?must be set}", "must be set"),
    ],
)
def test_process_word_errors(word, fragment):
    with pytest.raises(ShellError, match=fragment):
        process_word(word, ENV)


def test_split_keep_quotes():
    assert split_keep_quotes("a=\"b c\" d='e f' g=h\\ i") == ['a="b c"', "d='e f'", "g=h\\ i"]
