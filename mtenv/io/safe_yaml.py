"""Reading a YAML file that may come from someone else, in bounded time and memory.

:func:`read_yaml` reads only a regular file of at most
:data:`~mtenv.core.limits.MAX_SCENARIO_BYTES`, and parses it with PyYAML's safe loader extended
to refuse:

* nesting deeper than :data:`~mtenv.core.limits.MAX_YAML_DEPTH` (the composer recurses);
* more than :data:`~mtenv.core.limits.MAX_YAML_NODES` values once aliases are expanded: each
  node's expanded size is computed as it is composed (an alias counts as the whole node it
  names), so an alias bomb is refused before anything walks its expansion; recursive aliases
  are refused too;
* duplicate keys in a mapping (YAML would keep the last silently).

Every problem is a :class:`YamlProblem` whose message gives the line and what is wrong, never a
line of the file (a file given by mistake may hold anything).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from mtenv.core import limits
from mtenv.messages import excerpt


class YamlProblem(ValueError):
    """A file that cannot be read as bounded, well-formed YAML; the message is one line."""


class _Refused(yaml.MarkedYAMLError):
    """A bound or rule of this module, raised from inside the loader with its position."""


_MERGE = "tag:yaml.org,2002:merge"


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with bounded depth and expanded size, and no duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        mark = self.peek_event().start_mark
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None and id(target) not in self._sizes:
                raise _Refused(
                    problem="an alias refers to a block that contains it", problem_mark=mark
                )
        if self._depth >= limits.MAX_YAML_DEPTH:
            raise _Refused(
                problem=f"blocks nested deeper than {limits.MAX_YAML_DEPTH} levels",
                problem_mark=mark,
            )
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if id(node) not in self._sizes:
            size = 1
            if isinstance(node, yaml.SequenceNode):
                size += sum(self._sizes.get(id(child), 1) for child in node.value)
            elif isinstance(node, yaml.MappingNode):
                size += sum(
                    self._sizes.get(id(k), 1) + self._sizes.get(id(v), 1) for k, v in node.value
                )
            if size > limits.MAX_YAML_NODES:
                raise _Refused(
                    problem=f"aliases expand to more than {limits.MAX_YAML_NODES} values",
                    problem_mark=mark,
                )
            self._sizes[id(node)] = size
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = first.get(key)
                except TypeError:
                    continue  # an unhashable key: the base class says so
                if seen is not None:
                    raise _Refused(
                        problem=f"duplicate key {excerpt(key)} (first at line {seen + 1}); "
                        "expected each key once",
                        problem_mark=key_node.start_mark,
                    )
                first[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def read_text_bounded(path: Path, max_bytes: int) -> str:
    """The UTF-8 text of ``path``, a regular file of at most ``max_bytes`` bytes."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise YamlProblem(f"cannot read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise YamlProblem("expected a regular file (not a folder, pipe or device)")
    if info.st_size > max_bytes:
        raise YamlProblem(f"file larger than {max_bytes} bytes ({info.st_size} bytes)")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise YamlProblem(f"cannot read: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise YamlProblem(f"file larger than {max_bytes} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise YamlProblem(f"line {line}: not UTF-8 text; expected a UTF-8 YAML file") from None


def read_yaml(path: Path) -> Any:
    """The document in the YAML file ``path``, read and parsed within the bounds above."""
    text = read_text_bounded(path, limits.MAX_SCENARIO_BYTES)
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        raise YamlProblem(_describe(exc)) from None
    except yaml.YAMLError as exc:  # pragma: no cover - PyYAML marks its errors
        raise YamlProblem(f"not valid YAML ({type(exc).__name__})") from None
    except RecursionError:  # pragma: no cover - the depth bound comes first
        raise YamlProblem(f"blocks nested deeper than {limits.MAX_YAML_DEPTH} levels") from None
    finally:
        loader.dispose()


def _describe(exc: yaml.MarkedYAMLError) -> str:
    """``line N, column M: problem`` without PyYAML's quote of the offending line."""
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = " ".join(str(exc.problem or exc.context or "not valid YAML").split())
    if len(problem) > 80:
        problem = problem[:77] + "..."
    if isinstance(exc, _Refused):
        return f"{where}{problem}"
    return f"not valid YAML: {where}{problem}"
