"""Docker's flag spellings: ``--flag=false|true``, ``-d=true``, combined ``-itd`` (the guidebook's forms)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dockyard.cli import container
from dockyard.cli.flagspelling import FlagValueError, parse_bool, split_bool_values
from dockyard.cli.main import app

from .fake_engine import FakeEngine


class Opt:
    """The attributes of a click option that the splitter reads."""

    param_type_name = "option"

    def __init__(self, *opts: str, flag: bool = True, secondary: tuple[str, ...] = ()) -> None:
        self.opts, self.secondary_opts = list(opts), list(secondary)
        self.is_flag = self.is_bool_flag = flag
        self.count = False
        self.name = opts[-1].lstrip("-")


DETACH, TTY, INTERACTIVE = Opt("-d", "--detach"), Opt("-t", "--tty"), Opt("-i", "--interactive")
SIG = Opt("--sig-proxy", secondary=("--no-sig-proxy",))
NAME, ENV = Opt("--name", flag=False), Opt("-e", "--env", flag=False)
PARAMS = [DETACH, TTY, INTERACTIVE, SIG, NAME, ENV]


@pytest.mark.parametrize(
    ("args", "rest", "values"),
    [
        (["--detach=true", "x"], ["--detach", "x"], [(DETACH, True)]),
        (["--detach=false", "x"], ["x"], [(DETACH, False)]),
        (["-d=true", "x"], ["-d", "x"], [(DETACH, True)]),
        (["-d=0", "x"], ["x"], [(DETACH, False)]),
        (["-it=false", "x"], ["-i", "x"], [(TTY, False)]),
        (["-itd=T", "x"], ["-itd", "x"], [(DETACH, True)]),
        (["--sig-proxy=false"], [], [(SIG, False)]),
        (["--no-sig-proxy=true"], ["--no-sig-proxy"], [(SIG, False)]),
        (["--no-sig-proxy=false"], [], [(SIG, True)]),
        # values of options that take one are left alone, whatever they look like
        (["--name", "-d=false", "x"], ["--name", "-d=false", "x"], []),
        (["-e", "--tty=false", "x"], ["-e", "--tty=false", "x"], []),
        (["--name=-d=false", "x"], ["--name=-d=false", "x"], []),
        (["-eA=1", "-d=false", "x"], ["-eA=1", "x"], [(DETACH, False)]),
        # after `--`, and unknown options, untouched
        (["--", "-d=false"], ["--", "-d=false"], []),
        (["--color=false", "x"], ["--color=false", "x"], []),
    ],
)
def test_split(args, rest, values) -> None:
    assert split_bool_values(PARAMS, args) == (rest, values)


def test_split_stops_at_the_first_positional_when_options_do_not_intersperse() -> None:
    # run busybox ls -d=false: the last word belongs to ls
    assert split_bool_values(PARAMS, ["-d=true", "busybox", "ls", "-d=false"], interspersed=False) == (
        ["-d", "busybox", "ls", "-d=false"],
        [(DETACH, True)],
    )
    assert split_bool_values(PARAMS, ["busybox", "-d=false", "y"], interspersed=True) == (
        ["busybox", "y"],
        [(DETACH, False)],
    )


@pytest.mark.parametrize("word", ["1", "t", "T", "TRUE", "true", "True"])
def test_parse_bool_true(word: str) -> None:
    assert parse_bool(word, "-d") is True


@pytest.mark.parametrize("word", ["0", "f", "F", "FALSE", "false", "False"])
def test_parse_bool_false(word: str) -> None:
    assert parse_bool(word, "-d") is False


@pytest.mark.parametrize("word", ["", "yes", "tRUE", "2"])
def test_parse_bool_refuses(word: str) -> None:
    with pytest.raises(FlagValueError, match="strconv.ParseBool"):
        parse_bool(word, "-d")


# -- through the real commands ----------------------------------------------------------------


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict:
    seen: dict = {}

    def fake_create(api, body, name, *, command, pull=None):
        seen.update(body=body, name=name)
        return "c0ffee"

    def fake_attach(api, cid, **kwargs):
        seen.update(attach=kwargs)
        return 0

    monkeypatch.setattr(container, "create_container", fake_create)
    monkeypatch.setattr(container, "attach_and_wait", fake_attach)
    return seen


def test_run_with_the_guidebooks_spellings(runner: CliRunner, captured) -> None:
    result = runner.invoke(
        app, ["run", "-i=true", "--sig-proxy=false", "--rm=true", "-t=false", "busybox", "ls", "-d=false"]
    )
    assert result.exit_code == 0, result.output
    body = captured["body"]
    assert body["Cmd"] == ["ls", "-d=false"]
    assert (body["OpenStdin"], body["Tty"], body["HostConfig"]["AutoRemove"]) == (True, False, True)
    assert captured["attach"]["sig_proxy"] is False


def test_run_d_true_detaches(runner: CliRunner, captured) -> None:
    result = runner.invoke(app, ["run", "-d=true", "busybox"])  # (its start finds no daemon)
    assert "attach" not in captured  # a detached run attaches nothing
    assert captured["body"]["AttachStdout"] is False, result.output


def test_combined_short_flags(runner: CliRunner, captured) -> None:
    runner.invoke(app, ["run", "-itd", "busybox", "sh"])
    body = captured["body"]
    assert (body["OpenStdin"], body["Tty"], body["AttachStdout"]) == (True, True, False)


def test_a_bad_value_is_a_usage_error_naming_the_flag(runner: CliRunner, captured) -> None:
    result = runner.invoke(app, ["run", "-d=maybe", "busybox"])
    assert result.exit_code == 2
    assert 'invalid argument "maybe" for "-d, --detach" flag' in result.output
    assert not captured


def test_images_and_ps_all_false(runner: CliRunner, engine: FakeEngine) -> None:
    runner.invoke(app, ["-H", engine.host, "images", "-a=false"])
    runner.invoke(app, ["-H", engine.host, "images", "--all=true"])
    queries = [q for _, p, q, _ in engine.requests if p.endswith("/images/json")]
    assert [q.get("all") for q in queries] == [None, "1"]
    result = runner.invoke(app, ["-H", engine.host, "ps", "-a=true", "-q=false"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("CONTAINER ID")
    query = [q for _, p, q, _ in engine.requests if p.endswith("/containers/json")][-1]
    assert query == {"all": "1"}
