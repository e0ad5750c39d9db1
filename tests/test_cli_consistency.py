"""One command line: every option of every sub-command explains itself and shows its default,
and all sub-commands take trajectories first with ``--top TOP`` (issue 21, item 5)."""

from __future__ import annotations

import argparse

import pytest

from geomfeat.cli import build_parser
from geomfeat.errors import GeomfeatError
from geomfeat.evaluate.cli import _top_and_trajectories

COMMANDS = ("embed", "compare", "pretrain")


def _sub(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help_and_shows_its_default(command):
    parser = _sub(command)
    formatter = parser.formatter_class(prog="x")
    for action in parser._actions:
        if action.dest == "help" or action.dest == "version":
            continue
        assert action.help, f"{command} {action.option_strings or action.dest}: no help text"
        if not action.option_strings or action.nargs == 0 or action.default is None:
            continue  # positionals, flags and options whose help says what happens without them
        shown = formatter._get_help_string(action)
        assert "default" in shown, f"{command} {action.option_strings}: default not shown"


@pytest.mark.parametrize("command", COMMANDS)
def test_flags_do_not_claim_a_default_value(command):
    text = " ".join(_sub(command).format_help().split())
    assert "(default: True)" not in text and "(default: False)" not in text


def test_compare_takes_trajectories_with_top_like_embed_and_pretrain():
    args = build_parser().parse_args(["compare", "a.xtc", "b.xtc", "--top", "t.pdb",
                                      "--lag", "1", "-o", "out"])
    assert _top_and_trajectories(args) == ("t.pdb", ["a.xtc", "b.xtc"])
    for command in ("embed", "pretrain"):
        ns = build_parser().parse_args([command, "a.xtc", "b.xtc", "--top", "t.pdb", "-o", "o"])
        assert ns.top == "t.pdb"


def test_compare_keeps_the_older_topology_first_form():
    args = build_parser().parse_args(["compare", "t.pdb", "a.xtc", "b.xtc", "--lag", "1",
                                      "-o", "out"])
    assert _top_and_trajectories(args) == ("t.pdb", ["a.xtc", "b.xtc"])


def test_compare_without_a_topology_is_one_clear_error():
    args = build_parser().parse_args(["compare", "a.xtc", "--lag", "1", "-o", "out"])
    with pytest.raises(GeomfeatError, match="--top TOP"):
        _top_and_trajectories(args)
