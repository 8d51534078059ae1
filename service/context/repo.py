"""Candidate files and recent commits from a local git checkout, for ``tierwise pack --repo``.

Only the CLI reads a repository: the service packs what a request carries. Tracked files come
from ``git ls-files`` (so ignored build output and virtualenvs stay out), commits from
``git log``. A file that is too large, binary (a NUL byte) or not UTF-8 is skipped and reported
as dropped, not read into memory whole.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tierwise.service.context.model import Commit, Dropped, SourceFile
from tierwise.service.context.paths import path_problem
from tierwise.service.errors import InvalidInput

_SNIFF = 8192


@dataclass(frozen=True)
class Checkout:
    files: list[SourceFile]
    skipped: list[Dropped]
    commits: list[Commit]


def _git(repo: Path, *args: str) -> bytes:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True, timeout=60)
    except FileNotFoundError as exc:
        raise InvalidInput("git is not installed", field="repo") from exc
    except subprocess.CalledProcessError as exc:
        msg = exc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise InvalidInput(f"{repo} is not a git checkout: {msg[-1] if msg else exc}", field="repo") from exc
    return done.stdout


def read_file(root: Path, path: str, max_bytes: int) -> SourceFile | Dropped:
    full = root / path
    try:
        if full.is_symlink() or not full.is_file():
            return Dropped(path, "binary")
        if full.stat().st_size > max_bytes:
            return Dropped(path, "too_large")
        with full.open("rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError:
        return Dropped(path, "binary")
    if len(raw) > max_bytes:
        return Dropped(path, "too_large")
    if b"\0" in raw[:_SNIFF] or b"\0" in raw:
        return Dropped(path, "binary")
    try:
        return SourceFile(path, raw.decode("utf-8"))
    except UnicodeDecodeError:
        return Dropped(path, "binary")


def read_checkout(repo: Path, *, max_files: int, max_file_bytes: int, max_bytes: int,
                  commits: int = 30) -> Checkout:
    root = Path(_git(repo, "rev-parse", "--show-toplevel").decode().strip())
    paths = [p for p in _git(root, "ls-files", "-z").decode("utf-8", "surrogateescape").split("\0") if p]
    if len(paths) > max_files:
        raise InvalidInput(f"{root} tracks {len(paths)} files; the limit is {max_files} "
                           "(TIERWISE_CONTEXT_MAX_FILES)", field="repo")
    files: list[SourceFile] = []
    skipped: list[Dropped] = []
    total = 0
    for path in paths:
        if path_problem(path):
            skipped.append(Dropped(path, "binary"))
            continue
        got = read_file(root, path, max_file_bytes)
        if isinstance(got, Dropped):
            skipped.append(got)
            continue
        total += len(got.content)
        if total > max_bytes:
            raise InvalidInput(f"{root} holds more than {max_bytes} bytes of text (TIERWISE_CONTEXT_MAX_BYTES)",
                               field="repo")
        files.append(got)
    return Checkout(files, skipped, recent_commits(root, commits))


def recent_commits(root: Path, n: int) -> list[Commit]:
    if n <= 0:
        return []
    try:
        out = _git(root, "log", f"-n{n}", "--name-only", "--format=%x00%H%x1f%s")
    except InvalidInput:  # a repository with no commit yet
        return []
    commits: list[Commit] = []
    for block in out.decode("utf-8", "replace").split("\0")[1:]:
        head, _, names = block.partition("\n")
        sha, _, subject = head.partition("\x1f")
        commits.append(Commit(sha.strip(), subject.strip(), tuple(p for p in names.split("\n") if p.strip())))
    return commits
