"""Open tool vocabulary: any harness's tool names, mapped to capabilities by a data table.

Every agent harness names its tools its own way (``Bash``, ``str_replace_editor``,
``apply_patch``…). Routing needs only what a model must be able to drive, so names map to
capabilities through ``data/tools.json``; a name the table does not know is kept and reported,
never refused. The tools a harness offers describe the harness, not the task, so none of this
feeds the profile classifier: it decides eligibility only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, cast

from tierwise.service.classify import CAPABILITIES, Capability


def normalise(name: str) -> str:
    """The lookup key: case-insensitive, with '-' and ' ' read as '_'."""
    return name.strip().lower().replace("-", "_").replace(" ", "_")


@dataclass(frozen=True)
class ToolVocabulary:
    capabilities: Mapping[str, tuple[Capability, ...]]  # normalised name -> capabilities

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> ToolVocabulary:
        """Build from the ``data/tools.json`` layout; a bad entry is a ValueError naming it."""
        known = set(CAPABILITIES)
        out: dict[str, tuple[Capability, ...]] = {}
        where: dict[str, str] = {}
        for harness, names in table["harnesses"].items():
            for name, caps in names.items():
                bad = [c for c in caps if c not in known]
                if bad:
                    raise ValueError(f"tools.json: harnesses.{harness}.{name}: unknown capabilities {bad}; "
                                     f"known: {list(CAPABILITIES)}")
                key = normalise(name)
                value = tuple(sorted(cast(list[Capability], caps), key=CAPABILITIES.index))
                if key in out and out[key] != value:
                    raise ValueError(f"tools.json: harnesses.{harness}.{name} maps to {list(value)} but "
                                     f"harnesses.{where[key]} maps the same name to {list(out[key])}")
                out[key], where[key] = value, f"{harness}.{name}"
        return cls(out)

    def resolve(self, names: Iterable[str]) -> tuple[frozenset[Capability], tuple[str, ...]]:
        """The capabilities the named tools need, and the names the table does not know."""
        caps: set[Capability] = set()
        unknown: list[str] = []
        for name in names:
            found = self.capabilities.get(normalise(name))
            if found is None:
                unknown.append(name)
            else:
                caps.update(found)
        return frozenset(caps), tuple(dict.fromkeys(unknown))


@lru_cache(maxsize=1)
def vocabulary() -> ToolVocabulary:
    """The shipped table, read once on first use (never at import time)."""
    text = resources.files("tierwise.data").joinpath("tools.json").read_text(encoding="utf-8")
    return ToolVocabulary.from_table(json.loads(text))
