"""Words of code and prose, for lexical relevance: ``parseHTTPResponse`` and ``parse_http_response``
are both ``parse``, ``http``, ``response``, so a task in English finds code in either style."""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
IDENTIFIER = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]{2,}\b")

# Words so common in code or tasks that they carry nothing about where a change belongs.
STOP = frozenset([
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "has", "have", "if", "in", "into",
    "is", "it", "its", "of", "on", "or", "so", "that", "the", "their", "then", "there", "these", "this",
    "to", "was", "were", "will", "with", "not", "no", "can", "should", "would", "could", "when", "which",
    "while", "we", "you", "i", "our", "self", "cls", "def", "class", "return", "none", "true", "false",
    "import", "null", "var", "let", "const", "function", "func", "public", "private", "static", "void",
    "int", "str", "string", "new", "get", "set", "use", "used", "using", "also", "only", "just", "like",
    "make", "does", "do", "did"
])


def words(text: str) -> list[str]:
    """Lower-case sub-words of at least two letters, without stop words."""
    out: list[str] = []
    for token in _WORD.findall(text):
        parts = _CAMEL.findall(token) if not token.islower() else [token]
        for part in parts:
            low = part.lower()
            if len(low) > 1 and low not in STOP:
                out.append(low)
    return out
