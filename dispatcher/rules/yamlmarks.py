"""YAML that remembers where each value came from, loaded safely.

`load_marked(text, file)` gives a tree of `Y` values, each with the file, line and column of
its node (and, for mappings, of each key), so the schema can name the exact spot of a
mistake. Only YAML's safe types are built; duplicate keys are errors.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

import yaml

from dispatcher.rules.errors import Loc, Problems


@dataclass(slots=True)
class Y:
    value: Any  # dict[str, Y] | list[Y] | str | int | float | bool | None
    loc: Loc
    key_locs: dict[str, Loc] = field(default_factory=dict)

    def is_map(self) -> bool:
        return isinstance(self.value, dict)

    def is_list(self) -> bool:
        return isinstance(self.value, list)

    def plain(self) -> Any:
        """The value with its marks stripped."""
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"
STR_TAG = "tag:yaml.org,2002:str"


def _loc(file: str, node: yaml.Node) -> Loc:
    return Loc(file, node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, file: str, problems: Problems) -> None:
        self.file = file
        self.problems = problems
        self.constructor = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node) -> Y:
        loc = _loc(self.file, node)
        expected = (
            MAP_TAG
            if isinstance(node, yaml.MappingNode)
            else SEQ_TAG
            if isinstance(node, yaml.SequenceNode)
            else None
        )
        if expected is not None and node.tag != expected:
            self.problems.error(loc, f"unsupported YAML tag '{node.tag}'; write plain values")
            return Y(None, loc)
        if isinstance(node, yaml.MappingNode):
            self.constructor.flatten_mapping(node)  # YAML merge keys (<<)
            out: dict[str, Y] = {}
            key_locs: dict[str, Loc] = {}
            for key_node, value_node in node.value:
                key_loc = _loc(self.file, key_node)
                key = self.key(key_node)
                if not isinstance(key, str | int | float | bool) or key is None:
                    self.problems.error(key_loc, "a key must be a plain word")
                    continue
                key = str(key)
                if key in out:
                    self.problems.error(
                        key_loc, f"duplicate key '{key}' (first at line {key_locs[key].line})"
                    )
                    continue
                out[key] = self.build(value_node)
                key_locs[key] = key_loc
            return Y(out, loc, key_locs)
        if isinstance(node, yaml.SequenceNode):
            return Y([self.build(item) for item in node.value], loc)
        assert isinstance(node, yaml.ScalarNode)
        if node.tag == STR_TAG:
            return Y(node.value, loc)  # most scalars: skip the constructor's generic path
        return Y(self.constructor.construct_object(node, deep=True), loc)

    def key(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode) and node.tag == STR_TAG:
            return node.value
        return self.constructor.construct_object(node, deep=True)


_FAILED: Any = object()
FAST_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_marked(text: str, file: str, problems: Problems) -> Y | None:
    """Parse one YAML document; syntax errors go to `problems` with their line. A large
    file is parsed in pieces when it splits cleanly, else whole: the result is the same."""
    if len(text) >= CHUNKED_MIN_CHARS:
        chunked = load_in_pieces(text, file)
        if chunked is not None:
            return chunked
    return load_whole(text, file, problems)


def load_whole(text: str, file: str, problems: Problems) -> Y | None:
    """Parse one YAML document in one go (what `load_marked` does with a small file)."""
    try:
        # libyaml's composer is several times faster (docs/performance.md) and keeps the
        # marks; on a syntax error the pure Python one runs again, for its clearer message.
        node = yaml.compose(text, Loader=FAST_LOADER)
    except yaml.YAMLError:
        node = _compose_slowly(text, file, problems)
        if node is _FAILED:
            return None
    if node is None:
        return Y(None, Loc(file, 1, 1))
    try:
        return _Builder(file, problems).build(node)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        loc = Loc(file, mark.line + 1, mark.column + 1) if mark else Loc(file, 1, 1)
        problems.error(loc, f"YAML: {exc.problem}")
        return None


def _compose_slowly(text: str, file: str, problems: Problems) -> Any:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Loc(file, mark.line + 1, mark.column + 1) if mark else Loc(file, 1, 1)
        what = exc.problem or exc.context or "cannot parse"
        if exc.context and exc.context_mark and exc.problem:
            what += f" ({exc.context} that starts at line {exc.context_mark.line + 1})"
        problems.error(loc, f"YAML syntax: {what}")
        return _FAILED
    except yaml.YAMLError as exc:
        problems.error(Loc(file, 1, 1), f"YAML syntax: {exc}")
        return _FAILED


# --- parsing large files in pieces ------------------------------------------------------

CHUNKED_MIN_CHARS = 64 * 1024  # below this a whole parse is quick enough
_CHUNK_CACHE_MAX = 100_000
_ITEM = re.compile(r"^( *)- ")
# Anchors, aliases, merge keys, tags and tabs can tie one piece to another: parse whole.
_UNSAFE = re.compile(r"(^|[\s\[{,])[&*!][^\s]|<<|\t|^---|^\.\.\.", re.M)
_CHUNKS: dict[tuple[str, str], tuple[Y, int]] = {}  # (file, text) -> (item, its first line)
_CHUNKS_LOCK = threading.Lock()


def load_in_pieces(text: str, file: str) -> Y | None:
    """The document from its outermost list items parsed one by one (reusing items whose
    text is unchanged since an earlier parse), or None when the file does not split
    cleanly."""
    with _CHUNKS_LOCK:
        return _load_chunked(text, file)


def _load_chunked(text: str, file: str) -> Y | None:
    """The document from its outermost list items parsed one by one (reusing items whose
    text is unchanged), or None when the file does not split cleanly; then the caller parses
    it whole, which also words any error properly."""
    if _UNSAFE.search(text):
        return None
    lines = text.split("\n")
    indents = [len(m.group(1)) for line in lines if (m := _ITEM.match(line))]
    if len(indents) < 2:
        return None
    k = min(indents)
    spans: list[tuple[int, int]] = []  # 0-based [start, end) of each item at indent k
    start: int | None = None
    for n, line in enumerate(lines):
        stripped = line.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(stripped)
        if indent > k:
            continue
        if start is not None:
            spans.append((start, n))
            start = None
        if indent == k and stripped.startswith("- "):
            start = n
    if start is not None:
        spans.append((start, len(lines)))
    if len(spans) < 2:
        return None
    skeleton = list(lines)
    pieces: dict[int, Y] = {}
    used: set[str] = set()
    for a, b in spans:
        text_ab = "\n".join(lines[a:b])
        # The same text twice in one file (two identical routes) must be two values.
        piece = _piece(file, text_ab, a + 1, reuse=text_ab not in used)
        used.add(text_ab)
        if piece is None:
            return None
        pieces[a + 1] = piece
        skeleton[a] = " " * k + "- 0"
        for n in range(a + 1, b):
            skeleton[n] = ""
    problems = Problems()
    try:
        node = yaml.compose("\n".join(skeleton), Loader=FAST_LOADER)
        if node is None:
            return None
        root = _Builder(file, problems).build(node)
    except yaml.YAMLError:
        return None
    if problems.items:
        return None
    return _fill(root, pieces) if _count_filled(root, pieces) == len(pieces) else None


def _piece(file: str, text: str, first_line: int, *, reuse: bool) -> Y | None:
    """One list item, from the cache or parsed now, with its marks at `first_line`."""
    cached = _CHUNKS.get((file, text)) if reuse else None
    if cached is None:
        problems = Problems()
        try:
            node = yaml.compose(text, Loader=FAST_LOADER)
            built = _Builder(file, problems).build(node) if node is not None else None
        except yaml.YAMLError:
            return None
        if problems.items or built is None or not built.is_list() or len(built.value) != 1:
            return None
        if len(_CHUNKS) >= _CHUNK_CACHE_MAX:
            _CHUNKS.clear()
        cached = (built.value[0], 1)
    item, at = cached
    if at != first_line:
        _shift(item, first_line - at)  # lines were added or removed above this item
    if reuse:
        _CHUNKS[(file, text)] = (item, first_line)
    return item


def _shift(y: Y, delta: int) -> None:
    loc = y.loc
    y.loc = Loc(loc.file, loc.line + delta, loc.column)
    if y.key_locs:
        y.key_locs = {k: Loc(v.file, v.line + delta, v.column) for k, v in y.key_locs.items()}
    if isinstance(y.value, dict):
        for child in y.value.values():
            _shift(child, delta)
    elif isinstance(y.value, list):
        for child in y.value:
            _shift(child, delta)


def _count_filled(y: Y, pieces: dict[int, Y]) -> int:
    """How many placeholders the skeleton holds where a piece belongs (a check that every
    piece found its place: each is a list item whose line starts a piece)."""
    n = 0
    if isinstance(y.value, dict):
        n += sum(_count_filled(v, pieces) for v in y.value.values())
    elif isinstance(y.value, list):
        for item in y.value:
            if item.loc.line in pieces and item.value == 0:
                n += 1
            else:
                n += _count_filled(item, pieces)
    return n


def _fill(y: Y, pieces: dict[int, Y]) -> Y:
    if isinstance(y.value, dict):
        for key, value in y.value.items():
            y.value[key] = _fill(value, pieces)
    elif isinstance(y.value, list):
        y.value = [
            pieces[item.loc.line]
            if item.loc.line in pieces and item.value == 0
            else _fill(item, pieces)
            for item in y.value
        ]
    return y
