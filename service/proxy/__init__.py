"""OpenAI-compatible proxy: an agent changes one base URL and tierwise routes, forwards, escalates
and records every call of its task (issue #16). The HTTP edge is ``routes.py``; ``core.py`` holds
the flow; the other modules are one concept each (request, model ids, sessions, upstream, stream)."""
