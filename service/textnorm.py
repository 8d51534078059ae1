"""Client text made safe to store and to echo, and honest about being blank.

Prompts, task ids and queue notes end up in the journal, in DuckDB, in notebooks and in a
terminal. A NUL breaks C-string consumers, an ANSI escape repaints an operator's terminal, and a
prompt of zero-width spaces is "non-empty" to ``str.strip`` while saying nothing. So control
characters (other than tab, newline, carriage return) and escape sequences are removed before
anything stores the text, and blankness is judged on what a reader would see.

Pure: no I/O, no settings; the request models apply it as a validator.
"""

from __future__ import annotations

import re
import unicodedata

# CSI (``ESC [ … final``, or the 8-bit ``0x9B``), OSC (``ESC ] … BEL|ST``) and two-byte escapes
# (``ESC c`` resets a terminal, ``ESC 7`` saves the cursor…).
_ANSI = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[0-~]")
# C0 and C1 controls and DEL, except \t \n \r.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Characters that render as nothing but are not whitespace or format characters to ``unicodedata``.
_FILLERS = frozenset("\u115f\u1160\u2800\u3164\uffa0")
# Format (zero-width space/joiners, word joiner, BOM, bidi marks…) and controls.
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Cc"})


def clean(text: str) -> str:
    """``text`` without escape sequences and control characters; everything else is kept."""
    return _CONTROL.sub("", _ANSI.sub("", text))


def is_blank(text: str) -> bool:
    """True when no character of ``text`` would be visible: whitespace, format characters and fillers only."""
    return all(ch.isspace() or ch in _FILLERS or unicodedata.category(ch) in _INVISIBLE_CATEGORIES for ch in text)
