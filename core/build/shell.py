"""Word processing of Dockerfile arguments, as moby's ``shell/lex.go`` does it.

Quotes are removed, escapes resolved and ``$VAR``, ``${VAR}``, ``${VAR:-word}``,
``${VAR-word}``, ``${VAR:+word}``, ``${VAR+word}``, ``${VAR:?message}`` and
``${VAR?message}`` substituted from an environment given as ``KEY=VALUE``
strings (the last definition wins).  Unset variables expand to nothing.

* :func:`process_word` returns one string (ENV values, WORKDIR, USER ...);
* :func:`process_words` splits on unquoted whitespace too (COPY sources, EXPOSE ...);
* :func:`split_keep_quotes` splits like the shell but keeps quotes and escapes,
  the first pass over ``ENV a="b c" d=e`` before each word is processed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["ShellError", "env_map", "process_word", "process_words", "split_keep_quotes"]


class ShellError(ValueError):
    """A malformed word (unterminated quote, bad ``${...}``)."""


def env_map(env: Iterable[str] | Mapping[str, str] | None) -> dict[str, str]:
    if env is None:
        return {}
    if isinstance(env, Mapping):
        return dict(env)
    result: dict[str, str] = {}
    for item in env:
        key, _, value = item.partition("=")
        result[key] = value
    return result


_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


class _Lexer:
    def __init__(self, text: str, env: dict[str, str], escape: str) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1 if ch else 0
        return ch

    # -- top level -------------------------------------------------------------
    def words(self, split: bool, stop: str = "") -> list[str]:
        """Process up to ``stop`` (or the end); split on unquoted blanks when ``split``."""
        words: list[str] = []
        current: list[str] = []
        in_word = False
        while True:
            ch = self.peek()
            if ch == "":
                if stop:
                    raise ShellError(f"syntax error: missing '{stop}' in {self.text!r}")
                break
            if stop and ch == stop:
                self.next()
                break
            if split and ch in " \t\r\n":
                self.next()
                if in_word:
                    words.append("".join(current))
                    current, in_word = [], False
                continue
            in_word = True
            if ch == "'":
                self.next()
                current.append(self.single_quote())
            elif ch == '"':
                self.next()
                current.append(self.double_quote())
            elif ch == "$":
                self.next()
                current.append(self.dollar())
            elif ch == self.escape:
                self.next()
                following = self.next()
                current.append(following)  # an escape at the very end is dropped
            else:
                self.next()
                current.append(ch)
        if in_word or not split:
            words.append("".join(current))
        return words

    def single_quote(self) -> str:
        end = self.text.find("'", self.pos)
        if end < 0:
            raise ShellError(f"unexpected end of statement while looking for matching single-quote in {self.text!r}")
        value = self.text[self.pos : end]
        self.pos = end + 1
        return value

    def double_quote(self) -> str:
        out: list[str] = []
        while True:
            ch = self.next()
            if ch == "":
                raise ShellError(
                    f"unexpected end of statement while looking for matching double-quote in {self.text!r}"
                )
            if ch == '"':
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            if ch == self.escape:
                following = self.peek()
                if following == "":
                    continue
                if following in ('"', "$", self.escape):
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        start = self.pos
        if self.peek().isdigit():  # positional parameters are one digit
            self.next()
            return self.text[start : self.pos]
        while self.peek() and self.peek() in _NAME_CHARS:
            self.next()
        return self.text[start : self.pos]

    def dollar(self) -> str:
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            return self.env.get(name, "")
        self.next()  # {
        name = self.name()
        if not name:
            raise ShellError(f"bad substitution: missing variable name in {self.text!r}")
        ch = self.next()
        if ch == "}":
            return self.env.get(name, "")
        colon = False
        if ch == ":":
            colon = True
            ch = self.next()
        if ch not in ("-", "+", "?"):
            if ch == "":
                raise ShellError(f"syntax error: missing '}}' in {self.text!r}")
            raise ShellError(f"unsupported modifier ({ch}) in substitution: {self.text!r}")
        word = self.words(split=False, stop="}")[0]
        value = self.env.get(name)
        is_set = value is not None and (value != "" or not colon)
        if ch == "-":
            return value if is_set else word  # type: ignore[return-value]
        if ch == "+":
            return word if is_set else ""
        if not is_set:  # ?
            raise ShellError(f"{name}: {word or 'is not allowed to be unset'}")
        return value  # type: ignore[return-value]


def process_word(word: str, env: Iterable[str] | Mapping[str, str] | None = None, escape: str = "\\") -> str:
    """Quote removal, escapes and substitution; the result is one word."""
    return _Lexer(word, env_map(env), escape).words(split=False)[0]


def process_words(text: str, env: Iterable[str] | Mapping[str, str] | None = None, escape: str = "\\") -> list[str]:
    """Like :func:`process_word`, then split on the blanks that were not quoted or escaped."""
    return _Lexer(text, env_map(env), escape).words(split=True)


def split_keep_quotes(text: str, escape: str = "\\") -> list[str]:
    """Split on unquoted blanks keeping quotes and escapes (moby's ``parseWords``)."""
    words: list[str] = []
    current: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == escape and quote != "'" and i + 1 < len(text):
            current.append(ch + text[i + 1])
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = ""
            current.append(ch)
        elif ch in "'\"":
            quote = ch
            current.append(ch)
        elif ch in " \t\r\n":
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(ch)
        i += 1
    if quote:
        raise ShellError(f"unterminated quote ({quote}) in {text!r}")
    if current:
        words.append("".join(current))
    return words
