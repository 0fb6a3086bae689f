"""The Markdown reference of the scenario schema, generated from its pydantic models.

``mtenv scenarios schema --out docs/scenario-schema.md`` writes it; a test checks that the
shipped page is what this module generates, so the documentation cannot drift from the loader.
"""

from __future__ import annotations

import inspect
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from mtenv.core.limits import limits_table
from mtenv.core.schema import Scenario
from mtenv.io.scenario_files import plain_number

_REFERENCE_INTRO = """\
# Scenario schema reference

<!-- Generated from the pydantic models in mtenv/core/schema.py by
     `mtenv scenarios schema --out docs/scenario-schema.md`; do not edit by hand. -->

A scenario is one YAML mapping. Every block below lists its fields by path (`[]` is any item of
a list, `<name>` any key of a mapping), with the type, the default (*required* when there is
none) and the meaning. Unknown fields are errors, and every error names the file, the field
path, what was expected and what was found. `mtenv scenarios validate FILE...` checks files;
`mtenv scenarios show NAME|FILE` prints one resolved, with every default written out.

## `extends`

A file may start from another scenario and change only what differs:

```yaml
extends: quickstart          # a shipped scenario's name, or a path such as ./base.yaml
name: quickstart-bursty      # relative paths are relative to this file
workload:
  arrivals: {process: gamma, rate: 1200, cv: 3}
```

Mappings merge recursively; lists and scalars replace; a `workload.arrivals` block replaces the
base's whole (its fields depend on its process). Bases may extend further bases; a cycle is an
error naming the files. The result's `name` is the extending file's (its `name`, else its file
name without `.yaml`), and errors in the merged result name the extending file. A file named by
`extends` must be a valid scenario on its own; if it is not, the error says so without quoting
any of it.

## Types and checks

Types are strict: a number field takes a YAML number (`true` and `"5"` are errors), an integer
field an integer (`300.0` is an error), a string field a string. Beyond each field's own bounds,
a scenario must be runnable as written: every name resolves, device names (with `count`
expanded) are unique, resident models fit their device in the order listed, the task types are
ones the zoo serves and each has a plan that fits on some device, and the arrival process can be
built (a trace file is read and parsed). `mtenv scenarios validate` runs exactly what building
the env runs, so a file it accepts is one the env can be built from.
"""

_LIMITS_INTRO = """## Limits

A scenario file or a trace may come from someone else, so loading one is bounded: a file that
exceeds a bound is refused with one line naming the file, the field (or line) and the bound,
never by hanging or running out of memory, and error messages quote a bad value only as a short
excerpt, never a line of a file that is not a scenario or a trace. The bounds, from
`mtenv/core/limits.py`:

| what | bound | why |
| --- | --- | --- |
"""


def schema_reference() -> str:
    """The Markdown reference of the scenario schema (``docs/scenario-schema.md``), generated
    from the models so that it cannot drift from what the loader accepts: one section per block,
    one row per field with its path, type, default and description."""
    sections = [_REFERENCE_INTRO]
    for path, model, selector in _schema_blocks(Scenario, ""):
        sections.append(_block_section(path, model, selector))
    rows = [f"| {_cell(b.what)} | {_cell(b.value)} | {_cell(b.reason)} |" for b in limits_table()]
    sections.append(_LIMITS_INTRO + "\n".join(rows) + "\n")
    return "\n".join(sections)


def _schema_blocks(
    model: type[BaseModel], path: str, selector: str = ""
) -> list[tuple[str, type[BaseModel], str]]:
    """(path, model, selector) for ``model`` and every block nested in it, depth first;
    ``selector`` says which variant of a union the block is (``process: gamma``)."""
    blocks = [(path, model, selector)]
    for name, field in _documented_fields(model):
        child_path = f"{path}.{name}" if path else name
        for suffix, nested, choice in _nested_models(field.annotation):
            blocks += _schema_blocks(nested, child_path + suffix, choice)
    return blocks


def _documented_fields(model: type[BaseModel]) -> list[tuple[str, Any]]:
    """The fields a user writes: all but those excluded from dumps (``source``)."""
    return [(n, f) for n, f in model.model_fields.items() if not f.exclude]


def _nested_models(annotation: Any, suffix: str = "") -> list[tuple[str, type[BaseModel], str]]:
    """The blocks reachable through one field's type, with the path suffix that reaches them."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _nested_models(args[0], suffix)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(suffix, annotation, "")]
    if origin is list:
        return _nested_models(args[0], suffix + "[]")
    if origin is dict:
        return _nested_models(args[1], suffix + ".<name>")
    if origin in (Union, UnionType):
        found = []
        for arg in args:
            for sub, model, _ in _nested_models(arg, suffix):
                found.append((sub, model, _variant(model)))
        return found
    return []


def _variant(model: type[BaseModel]) -> str:
    """``process: gamma`` / ``kind: cascade`` for a member of a discriminated union."""
    for key in ("process", "kind"):
        field = model.model_fields.get(key)
        if field is not None and get_origin(field.annotation) is Literal:
            return f"{key}: {get_args(field.annotation)[0]}"
    return ""


def _block_section(path: str, model: type[BaseModel], selector: str) -> str:
    title = f"`{path}`" if path else "Top level"
    if selector:
        title += f" ({selector})"
    doc = " ".join(inspect.cleandoc(model.__doc__ or "").split())
    lines = [
        f"## {title}",
        "",
        doc,
        "",
        "| field | type | default | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for name, field in _documented_fields(model):
        full = f"{path}.{name}" if path else name
        cells = [f"`{full}`", _type_text(field.annotation, field.metadata), _default_text(field)]
        cells.append(field.description or "")
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


_TYPE_WORDS = {float: "number", int: "integer", str: "string", bool: "true or false"}


def _type_text(annotation: Any, metadata: list[Any] | tuple[Any, ...] = ()) -> str:
    """A reader's name for a field's type, constraints included (``number > 0``)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _type_text(args[0], (*metadata, *args[1:]))
    if annotation is type(None):
        text = "null"
    elif origin is Literal:
        text = " or ".join(f"`{a}`" for a in args)
    elif origin in (Union, UnionType):
        if all(models for models in (_nested_models(a) for a in args)):
            text = "one of the blocks below"
        else:
            text = " or ".join(_type_text(a) for a in args)
    elif origin is list:
        text = f"list of {_type_text(args[0])}"
    elif origin is dict:
        text = f"mapping of name to {_type_text(args[1])}"
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        text = "block (below)"
    else:
        text = _TYPE_WORDS.get(annotation, getattr(annotation, "__name__", str(annotation)))
    bounds = _bounds(metadata)
    return f"{text} {bounds}" if bounds else text


def _bounds(metadata: Any) -> str:
    """Numeric and length constraints from field metadata, as ``> 0, <= 1``."""
    parts = []
    for item in metadata:
        if isinstance(item, FieldInfo):
            parts.append(_bounds(item.metadata))
            continue
        for attr, word in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            if hasattr(item, attr) and type(item).__name__.lower() == attr:
                parts.append(f"{word} {plain_number(getattr(item, attr))}")
        if type(item).__name__ == "MinLen":
            parts.append(f"(at least {item.min_length})")
        if type(item).__name__ == "MaxLen":
            parts.append(f"(at most {item.max_length})")
    return ", ".join(p for p in parts if p)


def _default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "*required*"
    value = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
    if isinstance(value, BaseModel):
        return "its fields' defaults"
    if isinstance(value, dict | list):
        value = (
            [v.model_dump() if isinstance(v, BaseModel) else v for v in value]
            if isinstance(value, list)
            else {k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in value.items()}
        )
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    text = text.removesuffix("...").strip()
    return f"`{text}`"
