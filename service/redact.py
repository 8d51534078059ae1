"""Secrets out of task text before any of it is kept or shown.

Agents paste logs, configs and ``.env`` files into prompts, so the prompt preview that telemetry
keeps (and ``/v1/queue`` shows a human) may carry credentials. ``preview`` redacts before it cuts,
on a window a little longer than the preview, so a secret that straddles the cut cannot leave its
head behind. Patterns err towards redacting: a preview that loses a harmless word costs nothing.
"""

from __future__ import annotations

import re

REDACTED = "[REDACTED]"

# Tokens with a recognisable shape, one alternation so the text is scanned once.
_TOKENS = re.compile("|".join(f"(?:{p})" for p in (
    r"\bsk-[A-Za-z0-9][A-Za-z0-9_\-]{15,}",  # OpenAI (sk-, sk-proj-, sk-svcacct-), Anthropic (sk-ant-api03-)
    r"\btw_[A-Za-z0-9_\-]{20,}",  # tierwise's own API keys
    r"\bgh[pousr]_[A-Za-z0-9]{20,}",  # GitHub, classic
    r"\bgithub_pat_[A-Za-z0-9_]{20,}",  # GitHub, fine-grained
    r"\bxox[abposr]-[A-Za-z0-9\-]{10,}",  # Slack
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key ids
    r"\bAIza[0-9A-Za-z_\-]{35}",  # Google API keys
)))
# PEM private keys, to their END line or, when cut, to the end of the text.
_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=\-]{8,}")
# Assignments: api_key=…, "password": "…", AWS_SECRET_ACCESS_KEY=…, GITHUB_TOKEN: …; the name is
# matched from its secret-sounding end, so ``max_tokens: 5`` is left alone.
_ASSIGNED = re.compile(r"(?i)((?:api[_\-]?key|access[_\-]?key|secret|token|passw(?:or)?d|pwd)[\"']?\s*[:=]\s*[\"']?)"
                       r"[^\s\"',;{}]+")
# Cheap substring tests that skip a pattern's scan when it cannot match.
_ASSIGNED_WORDS = ("key", "secret", "token", "passw", "pwd")

# A window this much longer than the preview is redacted before the cut: longer than any token's
# minimum match, so a token that starts before the cut is still recognised (a PEM block matches to
# the end of the window when its END line lies beyond it).
_MARGIN = 256


def redact(text: str) -> str:
    """``text`` with every recognised secret replaced; idempotent."""
    if "PRIVATE KEY" in text:
        text = _PEM.sub("[REDACTED PRIVATE KEY]", text)
    text = _TOKENS.sub(REDACTED, text)
    lower = text.lower()
    if "bearer" in lower:
        text = _BEARER.sub(r"\1" + REDACTED, text)
    if any(word in lower for word in _ASSIGNED_WORDS):
        text = _ASSIGNED.sub(r"\1" + REDACTED, text)
    return text


def preview(text: str, limit: int) -> str:
    """The first ``limit`` characters of ``text`` after redaction."""
    return redact(text[: limit + _MARGIN])[:limit]
