"""Command-line mistakes answered with what to type.

With subcommands, argparse takes any word it cannot place for a command name, so a flag and its value in one
argument, a bare URL, a mistyped option followed by its value and a value with a space all end in
``argument COMMAND: invalid choice: ... (choose from 'sign', ...)``. :class:`CommandLineParser` (subcommand
parsers inherit it) reads the arguments again when argparse gives up, the way argparse reads them, and names
the first real mistake:

======================================  ============================================================================
``--target-url URL "--region us-east-1"``  ``split "--region us-east-1" into two arguments: --region us-east-1 ...``
``https://...amazonaws.com/mcp``         ``unexpected argument https://...: pass it as --target-url https://...``
``--target-ulr URL``                     ``unknown option --target-ulr: did you mean --target-url?``
``--timeout 5 minutes``                  ``--timeout takes one value; "5 minutes" has a space: write --timeout 5m``
``--warm yes``                           ``--warm takes no value: remove "yes"``
``dcotor``                               ``unknown command 'dcotor'; did you mean doctor?``
======================================  ============================================================================

An unknown command is named only for a word that looks like one (never for a URL, a flag or a stray value),
and suggestions come only from what is valid where the mistake is (a subcommand's own options). Anything
argparse already says well (``argument --timeout: expected one argument``, an invalid choice of an option,
a missing required argument) is kept as argparse says it.

Output (printed by ``main()``): one compact usage line, then ``ERROR: <message>`` as the last line of stderr,
exit code 2. The error comes last, as argparse's does, because the last line of stderr is what MCP clients
show; the JSON-RPC error sent to a client carries exactly the text after ``ERROR: ``.

Standard library only: this runs on the proxy's start-up path.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple, NoReturn

from sigv4_proxy.errors import CommandLineError

__all__ = ["COMMAND_PROG", "CommandLineParser", "Mistake", "closest", "find_mistake"]

# The namespace attribute naming the command that runs ("sigv4-proxy emulate mcp"), for messages.
COMMAND_PROG = "_command_prog"

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")
# A host name with a dot and an alphabetic last label, optionally a port and a path: abc.example.com/mcp.
_HOST = re.compile(r"^(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?::\d+)?(?:/\S*)?$")
# What a subcommand name looks like: a lower-case word, hyphens allowed.
_COMMAND_WORD = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
_NUMBER = re.compile(r"^\d+(?:\.\d*)?$|^\.\d+$")
_DURATION_UNITS = {
    "ns": "ns",
    "us": "us",
    "ms": "ms",
    "millisecond": "ms",
    "milliseconds": "ms",
    "s": "s",
    "sec": "s",
    "secs": "s",
    "second": "s",
    "seconds": "s",
    "m": "m",
    "min": "m",
    "mins": "m",
    "minute": "m",
    "minutes": "m",
    "h": "h",
    "hr": "h",
    "hrs": "h",
    "hour": "h",
    "hours": "h",
}
_SIZE_UNIT = re.compile(r"^[kmg]i?b?$|^b$", re.IGNORECASE)
_UNBOUNDED = sys.maxsize
# How close a mistyped name must be to a known one to be suggested (difflib ratio).
_CLOSE_ENOUGH = 0.6


class Mistake(NamedTuple):
    """What is wrong with the arguments, and the one suggestion that fixes it (None when there is none)."""

    message: str
    fix: str | None = None
    # The word taken for a subcommand name, when the mistake is an unknown command.
    command_word: str | None = None


class CommandLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise :class:`CommandLineError` with a message that says what to type.

    It remembers the arguments it was given so that, when argparse gives up, :func:`find_mistake` can read
    them again; and it records on the namespace which (sub)command's parser ran last (``COMMAND_PROG``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._given: list[str] = []

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._given = list(sys.argv[1:] if args is None else args)
        parsed, extras = super().parse_known_args(args, namespace)
        # Subcommand parsers finish first and their attributes are copied up: the innermost one wins.
        if not hasattr(parsed, COMMAND_PROG):
            setattr(parsed, COMMAND_PROG, self.prog)
        return parsed, extras

    def error(self, message: str) -> NoReturn:
        parser, mistake = find_mistake(self, self._given)
        if mistake is None:
            # argparse's own words are clear here (a missing value, an invalid choice of an option, ...).
            mistake = Mistake(message)
        command = mistake.command_word or _command_words(parser)
        raise CommandLineError(mistake.message, fix=mistake.fix, usage=usage_line(parser), command=command)


def usage_line(parser: argparse.ArgumentParser) -> str:
    """One line: how the command is called, and where the full list is (argparse's usage can be 10 lines)."""
    subcommands = _subcommands(parser)
    positionals = [_positional_usage(action) for action in _positionals(parser) if action is not subcommands]
    call = " ".join([parser.prog, "[options]", *positionals])
    if subcommands is not None:
        if subcommands.required:
            call = f"{parser.prog} {subcommands.metavar or 'COMMAND'} [options]"
        else:
            call = f"{call} | {parser.prog} {subcommands.metavar or 'COMMAND'} [options]"
    return f"usage: {call}  ({parser.prog} --help lists them)"


def find_mistake(
    parser: argparse.ArgumentParser, arguments: Sequence[str]
) -> tuple[argparse.ArgumentParser, Mistake | None]:
    """Read ``arguments`` as argparse does; the parser in effect at the first mistake (or at the end), and it.

    Returns no mistake when argparse's own message is the better one (a missing or ambiguous value, ``--``).
    """
    reader = _Reader(parser)
    tokens = list(arguments)
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token == "--":
            return reader.parser, None
        kind, action = _classify(reader.parser, token)
        if kind == "ambiguous":
            return reader.parser, None
        if kind == "unknown":
            return reader.parser, _unknown_option(reader.parser, token, tokens[index + 1 :])
        if kind == "option":
            assert action is not None
            taken = _values_after(reader.parser, action, token, tokens[index + 1 :])
            if taken is None:  # too few values: argparse says "expected one argument"
                return reader.parser, None
            reader.after_option(action, token, tokens[index + 1 : index + 1 + taken])
            index += 1 + taken
            continue
        slot = reader.next_slot()
        if isinstance(slot, argparse._SubParsersAction):
            chosen = slot.choices.get(token)
            if chosen is None:
                return reader.parser, _misplaced(reader, token, expecting_command=True)
            reader = _Reader(chosen)
            index += 1
            continue
        if slot is None:
            return reader.parser, _misplaced(reader, token, expecting_command=False)
        if slot.nargs == argparse.REMAINDER:
            return reader.parser, None
        reader.fill(slot)
        index += 1
    return reader.parser, None


# --- reading arguments as argparse does ----------------------------------------------------------------------


class _Reader:
    """One parser's state while reading: positional slots left, and the option just read."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser
        # Each positional with how many more words it takes.
        self.slots = [(action, _capacity(action)) for action in _positionals(parser)]
        self.option: str | None = None  # the option read last (as typed, without "=value")
        self.option_values: list[str] = []  # the values it took
        self.option_takes_values = False

    def after_option(self, action: argparse.Action, token: str, values: list[str]) -> None:
        if token.startswith("--"):
            name, equals, explicit = token.partition("=")
            # Named in full even when abbreviated (--tim -> --timeout): the message shows what to type.
            self.option = next((option for option in action.option_strings if option.startswith(name)), name)
            self.option_values = [explicit] if equals else values
        else:  # -H value, or -Hvalue
            self.option = token[:2]
            self.option_values = [token[2:]] if len(token) > 2 else values
        self.option_takes_values = _max_values(action) > 0

    def next_slot(self) -> argparse.Action | None:
        while self.slots and self.slots[0][1] <= 0:
            self.slots.pop(0)
        return self.slots[0][0] if self.slots else None

    def fill(self, slot: argparse.Action) -> None:
        action, left = self.slots[0]
        self.slots[0] = (action, left - 1)
        # A positional ends the option's run: a word after it is no longer "after the option's value".
        self.option = None


def _classify(parser: argparse.ArgumentParser, token: str) -> tuple[str, argparse.Action | None]:
    """What argparse takes ``token`` for: a positional, an option (with its action), an unknown option, or an
    ambiguous abbreviation ("positional", "option", "unknown", "ambiguous")."""
    if not token or token[0] not in parser.prefix_chars or token in parser.prefix_chars:
        return "positional", None
    actions = parser._option_string_actions
    if token in actions:
        return "option", actions[token]
    name = token.partition("=")[0]
    if "=" in token and name in actions:
        return "option", actions[name]
    if token[1] not in parser.prefix_chars and token[:2] in actions:
        return "option", actions[token[:2]]  # -vq, -H'Name: value'
    if parser.allow_abbrev and token.startswith("--"):
        matches = {actions[option] for option in actions if option.startswith(name)}
        if len(matches) > 1:
            return "ambiguous", None
        if matches:
            return "option", matches.pop()
    if parser._negative_number_matcher.match(token) and not parser._has_negative_number_optionals:
        return "positional", None
    if " " in token:
        return "positional", None  # argparse's rule; _misplaced explains a "--flag value" argument
    return "unknown", None


def _values_after(parser: argparse.ArgumentParser, action: argparse.Action, token: str, rest: list[str]) -> int | None:
    """How many of ``rest`` the option takes as its values; None when fewer than it needs follow."""
    explicit = ("=" in token and token.startswith("--")) or (token[1:2] not in parser.prefix_chars and len(token) > 2)
    if explicit:
        return 0
    available = 0
    for word in rest:
        if word == "--" or _classify(parser, word)[0] != "positional":
            break
        available += 1
    wanted = min(_max_values(action), available)
    return wanted if wanted >= _min_values(action) else None


def _min_values(action: argparse.Action) -> int:
    if isinstance(action.nargs, int):
        return action.nargs
    return 1 if action.nargs in (None, argparse.ONE_OR_MORE) else 0


def _max_values(action: argparse.Action) -> int:
    if isinstance(action.nargs, int):
        return action.nargs
    if action.nargs in (None, argparse.OPTIONAL):
        return 1
    return _UNBOUNDED


def _capacity(action: argparse.Action) -> int:
    if isinstance(action, argparse._SubParsersAction):
        return 1
    return _max_values(action)


def _positionals(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [action for action in parser._actions if not action.option_strings]


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    for action in _positionals(parser):
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def _positional_usage(action: argparse.Action) -> str:
    name = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
    return f"[{name}]" if action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE) else name


def _long_options(parser: argparse.ArgumentParser) -> list[str]:
    return [option for option in parser._option_string_actions if option.startswith("--")]


def _command_words(parser: argparse.ArgumentParser) -> str | None:
    """``"emulate mcp"`` for the parser of ``sigv4-proxy emulate mcp``; None for the top-level parser."""
    words = parser.prog.partition(" ")[2]
    return words or None


# --- the mistakes ---------------------------------------------------------------------------------------------


def _unknown_option(parser: argparse.ArgumentParser, token: str, rest: list[str]) -> Mistake:
    name = token.partition("=")[0]
    owner = _later_command_knowing(parser, name, rest)
    if owner is not None:
        return Mistake(
            f"{name} is an option of {owner.prog}, not of {parser.prog}: put it after the command "
            f"({owner.prog} {name} ...)",
            fix=f"{owner.prog} {name}",
        )
    close = closest(name, _long_options(parser))
    if close is not None:
        return Mistake(f"unknown option {name}: did you mean {close}?", fix=close)
    return Mistake(f"unknown option {name} ({parser.prog} --help lists the options)")


def _later_command_knowing(
    parser: argparse.ArgumentParser, name: str, rest: list[str]
) -> argparse.ArgumentParser | None:
    """The subcommand named later in ``rest`` that has option ``name`` (it was typed before the command)."""
    subcommands = _subcommands(parser)
    if subcommands is None:
        return None
    for word in rest:
        chosen = subcommands.choices.get(word)
        if chosen is not None:
            return chosen if name in chosen._option_string_actions else None
    return None


def _misplaced(reader: _Reader, word: str, *, expecting_command: bool) -> Mistake:
    """A word no positional slot takes: a flag and value in one, a URL, a stray value, a mistyped command."""
    parser = reader.parser
    shown = _shown(word)
    if word[:1] in parser.prefix_chars and " " in word:
        return _flag_and_value_in_one(parser, word)
    targets = "--target-url" in parser._option_string_actions
    if targets and _URL.match(word) and reader.option != "--target-url":
        return Mistake(f"unexpected argument {shown}: pass it as --target-url {shown}", fix=f"--target-url {shown}")
    if reader.option is not None and reader.option_takes_values:
        return _stray_value(reader.option, reader.option_values, word)
    if reader.option is not None and not (expecting_command and _closest_command(parser, word)):
        return Mistake(f"{reader.option} takes no value: remove {_quoted(word)}", fix=reader.option)
    if expecting_command and _COMMAND_WORD.match(word):
        return _unknown_command(parser, word)
    if targets and _HOST.match(word):
        url = f"https://{word}"
        return Mistake(f"unexpected argument {shown}: pass it as --target-url {url}", fix=f"--target-url {url}")
    return Mistake(f"unexpected argument {shown} ({parser.prog} --help lists what it takes)")


def _flag_and_value_in_one(parser: argparse.ArgumentParser, word: str) -> Mistake:
    """``"--region us-east-1"`` as one argument (typical of an MCP client's JSON ``args`` list)."""
    flag, _, value = word.partition(" ")
    value = value.strip()
    kind, action = _classify(parser, flag)
    spelled = ""
    if kind == "unknown":
        close = closest(flag, _long_options(parser))
        if close is None:
            return Mistake(f"unknown option {flag} (in {_quoted(word)}; {parser.prog} --help lists the options)")
        action = parser._option_string_actions[close]
        flag = close
        spelled = f", with the option spelled {close}"
    elif kind != "option" or action is None:
        return Mistake(f"unexpected argument {_quoted(word)} ({parser.prog} --help lists what it takes)")
    if _max_values(action) == 0:
        return Mistake(f"{flag} takes no value: write {flag} alone, not {_quoted(word)}", fix=flag)
    suggestion = f"{flag} {_shown(value)}"
    json_args = ", ".join(_json_string(part) for part in (flag, value))
    return Mistake(
        f"split {_quoted(word)} into two arguments{spelled}: {suggestion} (in an MCP client's JSON config: "
        f"{json_args})",
        fix=suggestion,
    )


def _stray_value(option: str, values: list[str], word: str) -> Mistake:
    """A word right after an option's value: the value had a space (``--timeout 5 minutes``)."""
    value = values[-1] if values else ""
    spaced = f"{value} {word}"
    joined = _joined_with_unit(value, word)
    if joined is not None:
        return Mistake(
            f"{option} takes one value; {_quoted(spaced)} has a space: write {option} {joined}",
            fix=f"{option} {joined}",
        )
    return Mistake(
        f"{option} takes one value, so {_quoted(word)} is left over: quote a value that has a space "
        f"({option} {_quoted(spaced)}) or remove {_quoted(word)}",
        fix=f"{option} {_quoted(spaced)}",
    )


def _joined_with_unit(value: str, word: str) -> str | None:
    """``5`` + ``minutes`` -> ``5m``; ``64`` + ``MiB`` -> ``64MiB``; None when ``word`` is no unit."""
    if not _NUMBER.match(value):
        return None
    unit = _DURATION_UNITS.get(word.lower())
    if unit is not None:
        return value + unit
    if _SIZE_UNIT.match(word):
        return value + word
    return None


def _unknown_command(parser: argparse.ArgumentParser, word: str) -> Mistake:
    subcommands = _subcommands(parser)
    assert subcommands is not None
    # "command" for sigv4-proxy's COMMAND, "target" for emulate's TARGET.
    what = (subcommands.metavar if isinstance(subcommands.metavar, str) else "command").lower()
    close = closest(word, list(subcommands.choices))
    if close is not None:
        return Mistake(f"unknown {what} '{word}'; did you mean {close}?", fix=close, command_word=word)
    return Mistake(f"unknown {what} '{word}'; the {what}s are: {', '.join(subcommands.choices)}", command_word=word)


def _closest_command(parser: argparse.ArgumentParser, word: str) -> str | None:
    subcommands = _subcommands(parser)
    return None if subcommands is None else closest(word, list(subcommands.choices))


def closest(word: str, candidates: list[str]) -> str | None:
    """The known name `word` is probably a typo of (for "did you mean ...?"), or None."""
    import difflib  # only a mistake pays for it

    matches = difflib.get_close_matches(word, candidates, n=1, cutoff=_CLOSE_ENOUGH)
    return matches[0] if matches else None


def _shown(word: str) -> str:
    """A word as typed, quoted when it has a space (so the message shows where one argument ends)."""
    return _quoted(word) if not word or any(char.isspace() for char in word) else word


def _quoted(word: str) -> str:
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _json_string(word: str) -> str:
    import json  # only a mistake pays for it

    return json.dumps(word)
