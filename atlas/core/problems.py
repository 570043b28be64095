"""Validation problems in this project's words, for every typed file a user writes (atlas.toml,
prompts.toml): one sentence per problem, naming the key, what was written, what is expected and a
line to copy.

pydantic's own wording ("Input should be a valid integer, unable to parse string as an integer
[type=int_parsing, ...] For further information visit ...") speaks of Python types and links to
its site. A user who typed ``size = "20k"`` needs the key, what they wrote, what is expected and
an example to copy, so every error a user can trigger is mapped here by its pydantic ``type``.
"""

from __future__ import annotations

import datetime
import difflib
import json
import math
import re
import types
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

#: What a number counts, per key, so that "a whole number" can say "of rows".
_UNITS = {
    "size": "rows",
    "fit_size": "points",
    "max_pixels": "pixels",
    "batch_size": "images per batch",
    "pca_dims": "dimensions",
    "n_neighbors": "neighbours",
    "epochs": "epochs",
    "steps": "steps",
    "width": "pixels",
    "height": "pixels",
}


@dataclass
class _Place:
    """Where in a settings file a pydantic error points: the table, the key, the field."""

    table: tuple[str, ...]  # ("data", "columns") for [data.columns]; () for the top level
    key: str | None  # the key in that table; None when the table itself is the problem
    index: int | None  # 0-based item of a list value
    field: FieldInfo | None  # the field the key names, when it names one
    model: type[BaseModel] | None  # the model of the table, whose keys are the known ones

    @property
    def header(self) -> str:
        return f"[{'.'.join(self.table)}]" if self.table else ""

    def subject(self, value: Any, with_value: bool = True) -> str:
        """``[sample] size = "20k"``: the line the user wrote, as near as the error tells."""
        head = f"{self.header} " if self.header else ""
        key = self.key or ""
        if self.index is not None:
            key += f" item {self.index + 1}"
        return f"{head}{key} = {_toml(value)}" if with_value else f"{head}{key}"


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _bare(annotation: Any) -> Any:
    """``int | None`` -> ``int``: TOML has no null, so the optional part never matters."""
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _place(model: type[BaseModel], loc: tuple) -> _Place:
    table: list[str] = []
    parts = list(loc)
    while parts:
        part = str(parts.pop(0))
        info = model.model_fields.get(part)
        annotation = _bare(info.annotation) if info else None
        if info and _is_model(annotation) and parts:
            table.append(part)
            model = annotation
            continue
        if info and get_origin(annotation) is dict and parts:
            return _Place((*table, part), str(parts[0]), None, None, None)
        index = parts[0] if parts and isinstance(parts[0], int) else None
        return _Place(tuple(table), part, index, info, model)
    return _Place(tuple(table), None, None, None, model)


def _toml(value: Any, limit: int = 60) -> str:
    """A value as it would be written in TOML (strings in double quotes, true/false, nan)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float) and not math.isfinite(value):
        text = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    elif isinstance(value, (int, float)):
        text = repr(value)
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, (datetime.date, datetime.time)):
        text = value.isoformat()
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(_toml(item, limit) for item in value) + "]"
    elif isinstance(value, dict):
        text = "{ " + ", ".join(f"{key} = {_toml(item, limit)}" for key, item in value.items()) + " }"
    elif value is None:
        text = "(no value)"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bounds(info: FieldInfo | None) -> dict[str, float]:
    found: dict[str, float] = {}
    for item in info.metadata if info else ():
        for name in ("ge", "gt", "le", "lt", "min_length", "max_length"):
            if getattr(item, name, None) is not None:
                found[name] = getattr(item, name)
    return found


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _expected(place: _Place) -> str:
    """What the key takes, in words: "a whole number of rows from 1 to 5000000"."""
    info = place.field
    annotation = _bare(info.annotation) if info else None
    if place.index is not None:
        annotation = (get_args(annotation) or (None,))[0]
    if annotation is bool:
        return "true or false"
    if annotation in (int, float):
        what = "a whole number" if annotation is int else "a number"
        unit = _UNITS.get(place.key or "") if annotation is int else None
        if unit:
            what += f" of {unit}"
        bounds = _bounds(info)
        low = bounds.get("ge", bounds.get("gt"))
        high = bounds.get("le", bounds.get("lt"))
        if "ge" in bounds and "le" in bounds:
            return f"{what} from {_number(low)} to {_number(high)}"
        parts = []
        if low is not None:
            parts.append(f"{'at least' if 'ge' in bounds else 'more than'} {_number(low)}")
        if high is not None:
            parts.append(f"{'at most' if 'le' in bounds else 'less than'} {_number(high)}")
        return f"{what}, {' and '.join(parts)}" if parts else what
    if annotation is str:
        return "text in quotes"
    if get_origin(annotation) is Literal:
        return _choices(get_args(annotation))
    if get_origin(annotation) is list:
        return "a list in square brackets"
    if get_origin(annotation) is dict or _is_model(annotation):
        return "a table"
    return "another kind of value"


def _choices(options: tuple) -> str:
    shown = [_toml(option) for option in options]
    if len(shown) == 1:
        return shown[0]
    return ("one of " if len(shown) > 2 else "") + ", ".join(shown[:-1]) + " or " + shown[-1]


def _round_example(annotation: Any, bounds: dict[str, float]) -> Any:
    """A plausible number inside the key's bounds, for keys with neither default nor example."""
    low, high = bounds.get("ge", bounds.get("gt", -math.inf)), bounds.get("le", bounds.get("lt", math.inf))
    candidates = (20, 100, 1000, 10, 5, 2, 1, 0) if annotation is int else (0.5, 7.5, 1.0, 10.0, 0.0)
    return next((c for c in candidates if low <= c <= high and c != bounds.get("gt") and c != bounds.get("lt")), low)


def _example(place: _Place, given: Any = None) -> str | None:
    """A line to copy, ``size = 20000``: the field's example, else its default, else one made up."""
    info = place.field
    key = place.key or ""
    if info is None:
        return f'{key} = "TEXT"' if place.table and place.table[-1] == "columns" else None
    annotation = _bare(info.annotation)
    value: Any = PydanticUndefined
    if info.examples:
        value = info.examples[0]
    elif info.default not in (PydanticUndefined, None, "", [], {}):
        value = info.default
    elif info.default_factory is not None:
        made = info.default_factory()
        if made not in ([], {}, ""):
            value = made
    if value is PydanticUndefined:
        if annotation in (int, float):
            value = _round_example(annotation, _bounds(info))
        elif annotation is bool:
            value = True
        elif get_origin(annotation) is Literal:
            value = get_args(annotation)[0]
        elif get_origin(annotation) is list and isinstance(given, str):
            value = [given]
        else:
            return None  # a made-up "…" would teach nothing
    if get_origin(annotation) is list and isinstance(given, str):
        value = [given]  # sources = "a.parquet" -> sources = ["a.parquet"]
    if _is_model(annotation):
        first = next(iter(annotation.model_fields.items()), None)
        inner = _example(_Place((), first[0], None, first[1], annotation)) if first else None
        return f"[{key}] on a line of its own with {inner} below it" if inner else f"[{key}] on a line of its own"
    return f"{key} = {_toml(value)}"


def _as_number(text: str) -> float | None:
    """What ``"20k"``, ``"20,000"`` or ``"1e6"`` was probably meant to be, or None."""
    match = re.fullmatch(r"\s*([-+]?[\d_,.]+(?:e[-+]?\d+)?)\s*([kKmM]?)\s*", text)
    if not match:
        return None
    try:
        number = float(match.group(1).replace(",", "").replace("_", ""))
    except ValueError:
        return None
    return number * {"": 1, "k": 1e3, "m": 1e6}[match.group(2).lower()]


def _suggest(word: str, known: list[str]) -> str | None:
    close = difflib.get_close_matches(word.lower(), [k.lower() for k in known], n=1, cutoff=0.6)
    return next(k for k in known if k.lower() == close[0]) if close else None


def _unknown(place: _Place, given: Any, root: type[BaseModel]) -> str:
    """One sentence for a key or table the model does not have, with the nearest one it does."""
    model = place.model
    known = list(model.model_fields) if model else []
    name = place.key or ""
    is_table = isinstance(given, dict) or (isinstance(given, list) and given and all(isinstance(g, dict) for g in given))

    def table_name(table: tuple[str, ...], field: FieldInfo | None = None) -> str:
        array = field is not None and get_origin(_bare(field.annotation)) is list
        return f"[[{'.'.join(table)}]]" if array else f"[{'.'.join(table)}]"

    if is_table:
        array = isinstance(given, list)
        written = f"[[{'.'.join((*place.table, name))}]]" if array else f"[{'.'.join((*place.table, name))}]"
        tables = [k for k in known if model and _is_tableish(model.model_fields[k])]
        close = _suggest(name, tables) or _suggest(name, known)
        if close:
            return f"unknown table {written} — did you mean {table_name((*place.table, close), model.model_fields[close])}?"
        names = [table_name((*place.table, k), model.model_fields[k]) for k in tables]
        return f"unknown table {written}; the tables are {_and(names)}." if names else f"unknown table {written}."
    where = f" in {place.header}" if place.header else (" at the top of the file" if _has_tables(root) else "")
    close = _suggest(name, [k for k in known if not (model and _is_tableish(model.model_fields[k]))])
    if close:
        return f"unknown key {name}{where} — did you mean {close}?"
    # A key from another table (unsafe_threshold under [sample]) or written above every table.
    for section, info in root.model_fields.items():
        inner = _bare(info.annotation)
        if _is_model(inner) and (section,) != place.table:
            other = _suggest(name, list(inner.model_fields))
            if other:
                return f"unknown key {name}{where} — did you mean {other} in [{section}]?"
    plain = [k for k in known if not (model and _is_tableish(model.model_fields[k]))]
    if plain:
        return f"unknown key {name}{where}; the keys there are {_and(plain)}."
    return f"unknown key {name}{where}."


def _is_tableish(info: FieldInfo) -> bool:
    annotation = _bare(info.annotation)
    return _is_model(annotation) or get_origin(annotation) is dict or (
        get_origin(annotation) is list and (get_args(annotation) or (None,))[0] is dict
    )


def _has_tables(model: type[BaseModel]) -> bool:
    return any(_is_tableish(info) for info in model.model_fields.values())


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "?", "!")) else text + "."


def _describe(item: dict, root: type[BaseModel]) -> list[str]:
    kind = item["type"]
    given = item.get("input")
    place = _place(root, tuple(item["loc"]))
    subject = place.subject(given)
    ctx = item.get("ctx") or {}
    example = _example(place, given)
    eg = f", e.g. {example}" if example else ""
    if kind == "extra_forbidden":
        return [_unknown(place, given, root)]
    if kind == "missing":
        head = f"{place.header} " if place.header else ""
        text = place.field is not None and _bare(place.field.annotation) is str
        add = eg or (f': add a line {place.key} = "…"' if text else "")
        return [_sentence(f"{head}{place.key} is missing{add}")]
    if kind == "unknown_column":  # [data.columns] (DataConfig._columns)
        known = list(ctx.get("known", ()))
        sentences = []
        for name in ctx.get("names", ()):
            close = _suggest(name, known)
            tail = f" — did you mean {close}?" if close else f"; the columns atlas reads are {_and(known)}."
            sentences.append(f"unknown column {name} in [{'.'.join((*place.table, place.key or ''))}]{tail}")
        return sentences
    if isinstance(given, float) and not math.isfinite(given) and kind not in ("literal_error",):
        return [_sentence(f"{subject}: expected a finite number, not nan or inf ({_expected(place)}){eg}")]
    if kind in ("int_parsing", "int_type", "int_from_float", "float_parsing", "float_type"):
        guess = _as_number(given) if isinstance(given, str) else None
        if guess is not None and place.field and _bare(place.field.annotation) is int and guess == int(guess):
            eg = f", e.g. {place.key} = {int(guess)}"
        elif guess is not None and place.field and _bare(place.field.annotation) is float:
            eg = f", e.g. {place.key} = {_number(guess)}"
        quoted = ", without quotes" if isinstance(given, str) else ""
        return [_sentence(f"{subject}: expected {_expected(place)}{quoted}{eg}")]
    if kind == "finite_number":
        return [_sentence(f"{subject}: expected a finite number, not nan or inf{eg}")]
    if kind in ("bool_parsing", "bool_type"):
        return [_sentence(f"{subject}: expected true or false, without quotes{eg}")]
    if kind in ("string_type", "str_type"):
        what = "one text value in quotes, not a list" if isinstance(given, list) else "text in quotes"
        return [_sentence(f"{subject}: expected {what}{eg}")]
    if kind in ("list_type", "tuple_type", "set_type"):
        annotation = _bare(place.field.annotation) if place.field else None
        if get_origin(annotation) is list and (get_args(annotation) or (None,))[0] is dict:
            table = ".".join((*place.table, place.key or ""))
            return [_sentence(f"{subject}: expected [[{table}]] tables, each starting with a line [[{table}]]")]
        return [_sentence(f"{subject}: expected a list in square brackets{eg}")]
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        table = ".".join((*place.table, place.key or ""))
        inner = f"; write [{table}] on a line of its own with its keys below it" if place.key else ""
        return [_sentence(f"{subject}: expected a table{inner}")]
    if kind == "literal_error":
        annotation = _bare(place.field.annotation) if place.field else None
        options = [str(o) for o in get_args(annotation)] if get_origin(annotation) is Literal else []
        close = _suggest(str(given), options) if isinstance(given, str) and options else None
        choices = _choices(tuple(options)) if options else "another value"
        tail = f" — did you mean {_toml(close)}?" if close else "."
        return [f"{subject}: expected {choices}{tail}"]
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than", "multiple_of"):
        return [_sentence(f"{subject} is out of range: expected {_expected(place)}{eg}")]
    if kind in ("string_too_short", "too_short"):
        least = ctx.get("min_length", 1)
        if least == 1:
            return [_sentence(f"{subject}: must not be empty{eg}")]
        unit = "characters" if kind == "string_too_short" else "items"
        return [_sentence(f"{subject}: expected at least {least} {unit}{eg}")]
    if kind in ("string_too_long", "too_long"):
        unit = "characters" if kind == "string_too_long" else "items"
        length = len(given) if hasattr(given, "__len__") else ctx.get("actual_length")
        has = f" (it has {length})" if length is not None else ""
        return [_sentence(f"{place.subject(given, with_value=False)} is too long: at most {ctx.get('max_length')} {unit}{has}")]
    if kind in ("value_error", "assertion_error"):
        reason = str(ctx.get("error") or "").strip() or "is not accepted"
        return [_sentence(f"{subject}: {reason}")]
    if kind in ("union_tag_invalid", "union_tag_not_found", "json_invalid", "json_type"):
        return [_sentence(f"{subject}: expected {_expected(place)}{eg}")]
    # Anything else pydantic may find: still our words, the key, the value and an example.
    return [_sentence(f"{subject} is not accepted here: expected {_expected(place)}{eg}")]


def validation_problems(error: ValidationError, model: type[BaseModel]) -> list[str]:
    """One sentence per problem in ``error`` (raised validating ``model``), in this project's
    words: the key, the value given, what is expected and a line to copy, never pydantic's
    wording. Shared by atlas.toml and prompts.toml so both files speak alike."""
    sentences: list[str] = []
    for item in error.errors(include_url=False):
        for sentence in _describe(item, model):
            if sentence not in sentences:
                sentences.append(sentence)
    return sentences


def problems_message(sentences: list[str]) -> str:
    """One paragraph: the sentence itself, or "2 problems: First. Second." for several."""
    if len(sentences) == 1:
        return sentences[0]
    return f"{len(sentences)} problems: " + " ".join(sentences)
