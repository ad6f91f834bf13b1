"""YAML that remembers where each value came from, loaded safely.

`load_marked(text, file)` gives a tree of `Y` values, each with the file, line and column of
its node (and, for mappings, of each key), so the schema can name the exact spot of a
mistake. Only YAML's safe types are built; duplicate keys are errors.
"""

from __future__ import annotations

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
                key = self.constructor.construct_object(key_node, deep=True)
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


_FAILED: Any = object()
FAST_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_marked(text: str, file: str, problems: Problems) -> Y | None:
    """Parse one YAML document; syntax errors go to `problems` with their line."""
    try:
        # libyaml's composer is 5-10x faster and keeps the marks; on a syntax error the pure
        # Python one runs again, for its clearer message.
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
