"""Definitions and imports of a source file, from tree-sitter grammars (Aider's "tags").

A definition is a named function, method, class, interface or type, with its signature: the
text of the definition up to its body, so a signature line is what a caller needs to know.
Imports are the module strings a file names. Grammars come from ``tree-sitter-language-pack``
(compiled into the wheel, nothing downloaded); files in other languages have no tags and are
ranked on their text alone.

Parsing is the expensive step of packing, so results are kept per content hash: a repeat call
on the same files parses nothing.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, get_args

Language = Literal["python", "javascript", "typescript", "tsx", "go", "java"]
LANGUAGES: tuple[Language, ...] = get_args(Language)

EXTENSIONS: dict[str, Language] = {
    ".py": "python", ".pyi": "python",
    ".js": "javascript", ".jsx": "javascript", ".mjs": "javascript", ".cjs": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx",
    ".go": "go", ".java": "java",
}

_JS_DEFS = """
(function_declaration name: (identifier) @name) @def
(generator_function_declaration name: (identifier) @name) @def
(class_declaration name: (_) @name) @def
(method_definition name: (property_identifier) @name) @def
(variable_declarator name: (identifier) @name value: [(arrow_function) (function_expression)]) @def
(import_statement source: (string) @import)
"""
_TS_DEFS = _JS_DEFS + """
(interface_declaration name: (type_identifier) @name) @def
(type_alias_declaration name: (type_identifier) @name) @def
(abstract_class_declaration name: (type_identifier) @name) @def
"""
QUERIES: dict[Language, str] = {
    "python": """
(function_definition name: (identifier) @name) @def
(class_definition name: (identifier) @name) @def
(import_statement name: (dotted_name) @import)
(import_statement name: (aliased_import name: (dotted_name) @import))
(import_from_statement module_name: (_) @import)
""",
    "javascript": _JS_DEFS.replace("(class_declaration name: (_) @name) @def",
                                   "(class_declaration name: (identifier) @name) @def"),
    "typescript": _TS_DEFS.replace("(class_declaration name: (_) @name) @def",
                                   "(class_declaration name: (type_identifier) @name) @def"),
    "tsx": _TS_DEFS.replace("(class_declaration name: (_) @name) @def",
                            "(class_declaration name: (type_identifier) @name) @def"),
    "go": """
(function_declaration name: (identifier) @name) @def
(method_declaration name: (field_identifier) @name) @def
(type_spec name: (type_identifier) @name) @def
(import_spec path: (interpreted_string_literal) @import)
""",
    "java": """
(class_declaration name: (identifier) @name) @def
(interface_declaration name: (identifier) @name) @def
(enum_declaration name: (identifier) @name) @def
(method_declaration name: (identifier) @name) @def
(constructor_declaration name: (identifier) @name) @def
(import_declaration (scoped_identifier) @import)
""",
}

# A signature longer than this is cut: a decorator stack or a default that is a whole literal.
MAX_SIGNATURE_CHARS = 240


@dataclass(frozen=True)
class Definition:
    name: str
    line: int  # 0-based
    column: int
    signature: str


@dataclass(frozen=True)
class FileTags:
    definitions: tuple[Definition, ...] = ()
    imports: tuple[str, ...] = ()


EMPTY = FileTags()


def language_of(path: str) -> Language | None:
    dot = path.rfind(".")
    return EXTENSIONS.get(path[dot:].lower()) if dot >= 0 else None


@cache
def _grammar(lang: Language) -> tuple[Any, Any]:
    from tree_sitter import Query
    from tree_sitter_language_pack import get_language

    language = get_language(lang)
    return language, Query(language, QUERIES[lang])


def _signature(node: Any, source: bytes) -> str:
    body = node.child_by_field_name("body")
    end = body.start_byte if body is not None else node.end_byte
    text = source[node.start_byte:end].decode("utf-8", "replace")
    # Comments between the header and the body are not part of the signature.
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith(("#", "//"))]
    one_line = " ".join(" ".join(lines).split())
    if len(one_line) > MAX_SIGNATURE_CHARS:
        one_line = one_line[:MAX_SIGNATURE_CHARS - 1] + "…"
    return one_line.rstrip("{").rstrip()


def extract(lang: Language, source: bytes) -> FileTags:
    """Parse once and read the definitions and imports the language's query captures."""
    from tree_sitter import Parser, QueryCursor

    language, query = _grammar(lang)
    tree = Parser(language).parse(source)
    defs: list[Definition] = []
    imports: list[str] = []
    for _, caps in QueryCursor(query).matches(tree.root_node):
        if "import" in caps:
            for node in caps["import"]:
                imports.append(source[node.start_byte:node.end_byte].decode("utf-8", "replace").strip("'\"`"))
            continue
        names, nodes = caps.get("name"), caps.get("def")
        if not names or not nodes:
            continue
        node = nodes[0]
        defs.append(Definition(name=source[names[0].start_byte:names[0].end_byte].decode("utf-8", "replace"),
                               line=node.start_point[0], column=node.start_point[1],
                               signature=_signature(node, source)))
    defs.sort(key=lambda d: (d.line, d.column))
    return FileTags(tuple(defs), tuple(dict.fromkeys(imports)))


class TagCache:
    """Tags by content hash, bounded; safe to share between request threads."""

    def __init__(self, size: int = 50_000) -> None:
        self._size = size
        self._items: OrderedDict[bytes, FileTags] = OrderedDict()
        self._lock = threading.Lock()

    def tags(self, path: str, content: str) -> FileTags:
        lang = language_of(path)
        if lang is None:
            return EMPTY
        source = content.encode("utf-8", "surrogatepass")
        key = hashlib.blake2b(source, digest_size=16, person=lang.encode()[:16]).digest()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        found = extract(lang, source)
        with self._lock:
            self._items[key] = found
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        return found
