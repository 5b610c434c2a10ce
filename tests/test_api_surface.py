"""The public API surface (``API_STABILITY.md``) against its recorded snapshot,
``tests/api_surface.json``, so that an accidental change fails CI.

The surface is one flat mapping of names to descriptions:

- ``python:NAME`` for each name in ``colibri_mm.__all__`` and each public method and
  property of the classes the API hands out (those its signatures return, and the
  ``kv`` accessors), with signatures and, for classes, their bases;
- ``option:NAME`` for each keyword of ``connect`` (``colibri_mm.options.Options``);
- ``cli:coldb COMMAND`` and ``cli:coldb-server`` with their options and arguments;
- ``config:KEY`` for each key of the server configuration, with its type and default;
- ``resp:COMMAND`` for each Redis-protocol command, with its arity and flags.

A deliberate change (a new command, a new keyword, a renamed option in a major
release) updates the snapshot in the same commit:

    COLIBRI_UPDATE_API_SURFACE=1 .venv/bin/python -m pytest tests/test_api_surface.py

and the diff of ``tests/api_surface.json`` shows a reviewer exactly what changed.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import colibri_mm
from colibri_mm.cli.main import build_parser as coldb_parser
from colibri_mm.database import DatabaseKv
from colibri_mm.kv.views import KvSnapshotView, KvTransactionView
from colibri_mm.options import Options
from colibri_mm.server.config import config_keys
from colibri_mm.server.main import build_parser as server_parser
from colibri_mm.server.resp_commands import COMMANDS

SNAPSHOT = Path(__file__).with_name("api_surface.json")
UPDATE = "COLIBRI_UPDATE_API_SURFACE"

HANDED_OUT_AS_ATTRIBUTES: tuple[type, ...] = (DatabaseKv, KvSnapshotView, KvTransactionView)
"""Classes reached through attributes (``db.kv``, ``snapshot.kv``, ``tx.kv``), which
return annotations do not show."""


def colibri_classes() -> dict[str, type]:
    """Every class defined in a loaded colibri_mm module, by name (to resolve return
    annotations written as strings, some naming types imported only for typing)."""
    found: dict[str, type] = {}
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith("colibri_mm"):
            for value in vars(module).values():
                if isinstance(value, type) and value.__module__.startswith("colibri_mm"):
                    found.setdefault(value.__name__, value)
    return found


def public_members(cls: type) -> Iterator[tuple[str, Any]]:
    """The public methods and properties ``cls`` defines or inherits from colibri_mm
    classes (``__init__`` included), as ``(name, function or property)``."""
    seen: set[str] = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("colibri_mm"):
            continue
        for name, member in vars(klass).items():
            if name in seen or (name.startswith("_") and name not in ("__init__", "__call__")):
                continue
            seen.add(name)
            if isinstance(member, staticmethod | classmethod):
                member = member.__func__
            if isinstance(member, property) or inspect.isfunction(member):
                yield name, member


def returned_classes(function: Any) -> list[type]:
    """The colibri_mm classes that ``function`` (or a property's getter) is annotated
    to return, however nested in the annotation (``Iterator[Table]``)."""
    if isinstance(function, property):
        function = function.fget
    annotation = inspect.signature(function).return_annotation
    text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
    known = colibri_classes()
    return [known[name] for name in re.findall(r"\b[A-Za-z_]\w*\b", text) if name in known]


def describe(member: Any) -> str:
    if isinstance(member, property):
        return "property" + ("" if member.fset is None else " (settable)")
    return str(inspect.signature(member))


def python_surface() -> dict[str, str]:
    """``__all__`` and, transitively, the classes the API hands out."""
    surface: dict[str, str] = {}
    pending: list[type] = list(HANDED_OUT_AS_ATTRIBUTES)
    for name in colibri_mm.__all__:
        value = getattr(colibri_mm, name)
        if isinstance(value, type):
            pending.append(value)
        elif callable(value):
            surface[f"python:{name}"] = describe(value)
            pending += returned_classes(value)
        else:
            surface[f"python:{name}"] = type(value).__name__
    done: set[type] = set()
    while pending:
        cls = pending.pop()
        if cls in done:
            continue
        done.add(cls)
        bases = ", ".join(b.__qualname__ for b in cls.__bases__)
        surface[f"python:{cls.__qualname__}"] = f"class({bases})"
        for name, member in public_members(cls):
            surface[f"python:{cls.__qualname__}.{name}"] = describe(member)
            pending += returned_classes(member)
    return surface


def parser_surface(prefix: str, parser: argparse.ArgumentParser) -> dict[str, str]:
    """A command's options (every spelling, and its choices) and positional arguments;
    subcommands each under their own key."""
    surface: dict[str, str] = {}
    words = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                surface.update(parser_surface(f"{prefix} {name}", sub))
            continue
        word = "/".join(action.option_strings) or action.dest.upper()
        if action.choices is not None:
            word += "{" + ",".join(map(str, action.choices)) + "}"
        words.append(word)
    surface[f"cli:{prefix}"] = " ".join(sorted(words))
    return surface


def surface() -> dict[str, str]:
    """The whole public surface, as recorded in the snapshot."""
    result = python_surface()
    result.update({f"option:{f.name}": f"{f.type} = {f.default!r}"
                   for f in dataclasses.fields(Options)})
    result.update(parser_surface("coldb", coldb_parser()))
    result.update(parser_surface("coldb-server", server_parser()))
    result.update({f"config:{key}": f"{kind} = {json.dumps(default)}"
                   for key, kind, default, _ in config_keys()})
    result.update({f"resp:{spec.name}": f"arity {spec.arity} flags {','.join(spec.flags)}"
                   for spec in COMMANDS.values()})
    return dict(sorted(result.items()))


def test_public_api_surface_matches_the_snapshot() -> None:
    current = surface()
    if os.environ.get(UPDATE) == "1":
        SNAPSHOT.write_text(json.dumps(current, indent=1) + "\n")
    recorded = json.loads(SNAPSHOT.read_text())
    changes = [f"removed  {k}: {recorded[k]}" for k in recorded.keys() - current.keys()]
    changes += [f"added    {k}: {current[k]}" for k in current.keys() - recorded.keys()]
    changes += [f"changed  {k}: {recorded[k]}  ->  {current[k]}"
                for k in recorded.keys() & current.keys() if recorded[k] != current[k]]
    assert not changes, (
        "the public API surface differs from tests/api_surface.json:\n  "
        + "\n  ".join(sorted(changes, key=lambda c: c[9:]))
        + f"\nIf the change is deliberate (see API_STABILITY.md), record it with "
          f"{UPDATE}=1 .venv/bin/python -m pytest tests/test_api_surface.py")


def test_the_surface_covers_what_api_stability_promises() -> None:
    current = surface()
    assert {f"python:{name}" for name in colibri_mm.__all__} <= current.keys()
    for key in ("python:Database.table", "python:Table.scan", "python:DatabaseKv.put",
                "cli:coldb put", "cli:coldb-server", "config:server.resp_port",
                "resp:get", "option:durability"):
        assert key in current, key
