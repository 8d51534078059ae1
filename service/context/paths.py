"""Which candidate paths and contents the packer accepts, one rule for the API and the CLI.

A path is a relative POSIX path inside the repository: no ``..`` component, not absolute, no
drive or backslash, no NUL. The packer never opens a path, but it echoes paths back in the
context, and a client that trusts them (writes an edit to ``included[0].path``) must not be led
out of its checkout. Content with a NUL character is binary: it has no place in a prompt.
"""

from __future__ import annotations

MAX_PATH_CHARS = 4096


def path_problem(path: str) -> str | None:
    """Why ``path`` is refused, or None."""
    if not path:
        return "is empty"
    if len(path) > MAX_PATH_CHARS:
        return f"is longer than {MAX_PATH_CHARS} characters"
    if "\x00" in path or any(ord(c) < 32 for c in path):
        return "contains a control character"
    if "\\" in path:
        return "contains a backslash; use '/'"
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        return "is absolute; send a path relative to the repository"
    if any(part == ".." for part in path.split("/")):
        return "contains a '..' component"
    if any(part in ("", ".") for part in path.split("/")):
        return "has an empty or '.' component"
    return None


def is_binary(content: str) -> bool:
    return "\x00" in content
