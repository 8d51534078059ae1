"""Where a JSON document ends, found while it streams in: the structural end marker.

A model asked for a JSON object is done when the top-level object closes; whatever it generates
after that is waste the proxy need not wait for (or pay for). Pure and incremental: text is fed
as it arrives, and strings and escapes are tracked so a ``}`` inside a string does not count.
"""

from __future__ import annotations

OPENERS, CLOSERS = "{[", "}]"


class JsonEnd:
    def __init__(self) -> None:
        self.depth = 0
        self.started = False
        self.in_string = False
        self.escaped = False
        self.done = False
        self.scalar = False  # the document is not an object or array: no marker to wait for

    def feed(self, text: str) -> int | None:
        """The index just past the end of the top-level value in ``text``, or None if not there yet."""
        if self.done or self.scalar:
            return None
        for i, ch in enumerate(text):
            if not self.started:
                if ch.isspace():
                    continue
                if ch not in OPENERS:
                    self.scalar = True
                    return None
                self.started, self.depth = True, 1
            elif self.in_string:
                if self.escaped:
                    self.escaped = False
                elif ch == "\\":
                    self.escaped = True
                elif ch == '"':
                    self.in_string = False
            elif ch == '"':
                self.in_string = True
            elif ch in OPENERS:
                self.depth += 1
            elif ch in CLOSERS:
                self.depth -= 1
                if self.depth == 0:
                    self.done = True
                    return i + 1
        return None
