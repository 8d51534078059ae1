"""An admin API key for the load bench, when the installed ``tierwise`` has ``keys create``.

API keys are being added while this bench exists: it must drive a server that has them and one
that does not. So it asks the CLI, not the code: if ``tierwise --help`` lists ``keys``, it creates
an admin key in the bench's home before the server starts and sends it as a bearer token
(every request, the hostile ones too: a probe refused with 401 would test the auth check, not
the handling the probe is for).
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

from tierwise.bench._server import ROOT, Server

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-.]{19,}")
_FIELDS = ("key", "token", "api_key", "secret", "bearer")


def has_keys_command(help_text: str) -> bool:
    """``keys`` among the subcommands of ``tierwise --help`` (the ``{serve,route,...}`` list)."""
    m = re.search(r"\{([a-z,_-]+)\}", help_text)
    return m is not None and "keys" in m.group(1).split(",")


def parse_key(stdout: str) -> str:
    """The secret in ``keys create``'s output: a JSON field if it prints JSON, else the longest
    token-looking word (ids and scope names are shorter than a secret)."""
    text = stdout.strip()
    if _TOKEN.fullmatch(text):
        return text  # the key alone on stdout, as `tierwise keys create` prints it
    try:
        data: Any = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for name in _FIELDS:
            if isinstance(data.get(name), str) and data[name]:
                return str(data[name])
    candidates = _TOKEN.findall(text)
    if not candidates:
        raise ValueError(f"no API key in `tierwise keys create` output: {text[:300]!r}")
    return max(candidates, key=len)


def _run(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(server._cmd(*args), cwd=str(ROOT), env=server._env(), capture_output=True, text=True,
                          timeout=300, check=False)


def admin_auth(server: Server) -> dict[str, str]:
    """``{"Authorization": "Bearer ..."}`` for a fresh admin key in the server's home, or ``{}``."""
    if not has_keys_command(_run(server, "--help").stdout):
        return {}
    server.home.mkdir(parents=True, exist_ok=True)
    args = ["keys", "create", "--scopes", "admin"]
    if "--name" in _run(server, "keys", "create", "--help").stdout:
        args += ["--name", "load-bench"]
    out = _run(server, *args)
    if out.returncode != 0:
        raise RuntimeError(f"tierwise {' '.join(args)} failed ({out.returncode}): {(out.stderr or out.stdout)[-1000:]}")
    return {"Authorization": f"Bearer {parse_key(out.stdout)}"}
