"""Large rule files are parsed in pieces and reused across reloads: the result, marks
included, must be what a whole parse gives, before and after every kind of edit."""

from __future__ import annotations

from typing import Any

import pytest

from dispatcher.rules import yamlmarks
from dispatcher.rules.errors import Problems
from dispatcher.rules.yamlmarks import Y, load_in_pieces, load_marked, load_whole


def whole(text: str) -> Y:
    problems = Problems()
    got = load_whole(text, "f.yaml", problems)
    assert got is not None, problems.items
    return got


def marks(y: Y) -> Any:
    """Every value with where it stands, keys included."""
    if y.is_map():
        return (tuple(y.loc), {k: (tuple(y.key_locs[k]), marks(v)) for k, v in y.value.items()})
    if y.is_list():
        return (tuple(y.loc), [marks(v) for v in y.value])
    return (tuple(y.loc), y.value)


ROUTE = """\
    - name: r{n}
      match: {{regions: [G{g}], kinds: [fire, shelling]}}
      receiver: t{n}   # a comment
      group_wait: 30s
      continue: {cont}
      notes: |
        a literal block
        - that looks like an item
      routes:
        - {{match: {{killed: ">= {n}"}}, receiver: t1}}
        - match:
            regions: [A, B]
"""


def big_file(n: int = 300) -> str:
    head = "# routes\nroute:\n  receiver: t0\n  group_by: [region]\n  routes:\n"
    body = "\n".join(
        ("    # governorate section\n" if i % 50 == 0 else "")
        + ROUTE.format(n=i, g=i % 7, cont="true" if i % 2 else "false")
        for i in range(n)
    )
    return head + body + "\ntail: [1, 2.5, null, yes]\n"


def test_a_large_file_is_parsed_in_pieces_as_a_whole_parse_would() -> None:
    text = big_file()
    assert len(text) > yamlmarks.CHUNKED_MIN_CHARS
    assert load_in_pieces(text, "f.yaml") is not None, "it does split"
    got = load_marked(text, "f.yaml", Problems())
    assert got is not None
    assert marks(got) == marks(whole(text))


@pytest.mark.parametrize(
    "edit",
    [
        lambda t: t.replace("receiver: t7 ", "receiver: t8 ", 1),
        lambda t: t.replace("  routes:\n", "  routes:\n    - {name: first, receiver: t9}\n", 1),
        lambda t: t.replace("    - name: r3\n", "\n\n\n    - name: r3\n", 1),
        lambda t: t.replace(ROUTE.format(n=5, g=5, cont="true"), "", 1),
        lambda t: t.replace("\ntail:", "\n" + ROUTE.format(n=1, g=1, cont="true") + "tail:"),
    ],
    ids=["value", "insert-top", "blank-lines", "delete", "duplicate"],
)
def test_pieces_reused_after_an_edit_carry_their_new_lines(edit: Any) -> None:
    text = big_file()
    load_marked(text, "f.yaml", Problems())  # fills the piece cache
    edited = edit(text)
    got = load_marked(edited, "f.yaml", Problems())
    assert got is not None
    assert marks(got) == marks(whole(edited))


def test_files_that_do_not_split_cleanly_are_parsed_whole() -> None:
    anchored = big_file().replace("group_by: [region]", "group_by: &g [region]")
    assert load_in_pieces(anchored, "f.yaml") is None
    broken = big_file().replace("receiver: t7 ", "receiver: [t7 ", 1)
    problems = Problems()
    assert load_marked(broken, "f.yaml", problems) is None
    (error,) = problems.items
    assert error.loc.line > 1, "the error is named where it is, by the whole parse"
