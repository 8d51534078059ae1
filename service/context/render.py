"""The text of one file in each mode. A header names the path and the mode, so a model (and a
person reading the context) knows when it sees a file whole and when only its outline."""

from __future__ import annotations

from tierwise.service.context.model import Mode
from tierwise.service.context.tags import FileTags

MAX_INDENT = 16
SUMMARY_NAMES = 12


def header(path: str, mode: Mode) -> str:
    return f"### {path} ({mode})"


def render(path: str, content: str, tags: FileTags | None, mode: Mode) -> str | None:
    """None when the mode says nothing about this file (no definitions to list)."""
    if mode == "full":
        return f"{header(path, mode)}\n{content.rstrip()}"
    if mode == "signatures":
        if tags is None or not tags.definitions:
            return None
        lines = [" " * min(d.column, MAX_INDENT) + d.signature for d in tags.definitions]
        return "\n".join([header(path, mode), *lines])
    names = list(dict.fromkeys(d.name for d in tags.definitions if d.column == 0)) if tags else []
    if not names:
        return header(path, mode)
    more = f" (+{len(names) - SUMMARY_NAMES} more)" if len(names) > SUMMARY_NAMES else ""
    return f"{header(path, mode)}: defines {', '.join(names[:SUMMARY_NAMES])}{more}"
