"""The argument parser `dssl` uses: options may stand before, between or after positionals on every command.

Plain argparse stops reading a `nargs="*"` positional at the first option, so `dssl train CONFIG --overwrite k=v`
used to fail with `unrecognized arguments: k=v`. `parse_intermixed_args` fixes that, but refuses parsers that have
sub-commands, so here every *leaf* command parser (train, submit, config show, ...) parses intermixed while the
parsers that only choose a sub-command (dssl, dssl data, dssl jobs, ...) parse as usual and hand the rest on.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence


class IntermixedArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose leaf (sub-)commands accept options and positionals in any order."""

    _parsing_intermixed = False  # set while argparse's intermixed parsing calls back into parse_known_args

    def _has_subcommands(self) -> bool:
        return any(isinstance(a, argparse._SubParsersAction) for a in self._get_positional_actions())

    def parse_known_args(self, args: Sequence[str] | None = None,
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        if self._has_subcommands() or self._parsing_intermixed:
            return super().parse_known_args(args, namespace)
        self._parsing_intermixed = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._parsing_intermixed = False


def leaf_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every parser below `parser` that runs a command (has no sub-commands of its own)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield parser
        return
    for action in subs:
        seen: set[int] = set()
        for child in action.choices.values():
            if id(child) not in seen:  # aliases map several names to one parser
                seen.add(id(child))
                yield from leaf_parsers(child)


def accept_verbose_everywhere(parser: argparse.ArgumentParser) -> None:
    """Let `-v` follow the command too (`dssl train CONFIG -v`), not only precede it (`dssl -v train CONFIG`).

    The leaf option has no default (SUPPRESS), so it never overwrites a `-v` given before the command.
    """
    for leaf in leaf_parsers(parser):
        if "--verbose" not in leaf._option_string_actions:
            leaf.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                              help="debug logging and the libraries' own output on the console (also before "
                              "the command)")
