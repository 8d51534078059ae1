"""The source of each SWE-bench project at a release close to a task's time, from PyPI.

The data holds no dates, but a pull request's number grows with time, so each project has a
short table of (first PR number, release): a task gets the release in force around its PR. The
release's wheel (pure Python, or any platform's: only its ``.py`` files are read) is fetched
once with ``pip download`` into a cache and its files are mapped back to repository paths
(``matplotlib/…`` in the wheel is ``lib/matplotlib/…`` in the repository). Wheels, not sdists:
no build step, and they hold the library code that the gold patches edit (SWE-bench's gold
patch excludes tests).
"""

from __future__ import annotations

import bisect
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tierwise.service.context.model import SourceFile

# repo → [(first PR number, PyPI project, version)], PR numbers ascending. The cut points are
# approximate (release dates against PR numbers); tasks whose gold files are not in the chosen
# release are reported as not covered rather than guessed at.
RELEASES: dict[str, list[tuple[int, str, str]]] = {
    "django/django": [(0, "Django", "3.0"), (12500, "Django", "3.2"), (14500, "Django", "4.1"),
                      (16000, "Django", "5.0")],
    "sympy/sympy": [(0, "sympy", "1.5"), (19000, "sympy", "1.9"), (23000, "sympy", "1.12")],
    "astropy/astropy": [(0, "astropy", "4.0"), (12000, "astropy", "5.1"), (14300, "astropy", "5.3")],
    "matplotlib/matplotlib": [(0, "matplotlib", "3.1.3"), (20000, "matplotlib", "3.5.3"),
                              (24000, "matplotlib", "3.7.1")],
    "scikit-learn/scikit-learn": [(0, "scikit-learn", "0.20.4"), (12000, "scikit-learn", "0.22.2"),
                                  (20000, "scikit-learn", "1.3.0")],
    "sphinx-doc/sphinx": [(0, "Sphinx", "3.5.4"), (9000, "Sphinx", "4.5.0"), (10500, "Sphinx", "7.1.2")],
    "pytest-dev/pytest": [(0, "pytest", "5.4.3"), (7000, "pytest", "7.1.3"), (10000, "pytest", "7.4.4")],
    "pylint-dev/pylint": [(0, "pylint", "2.13.9"), (6000, "pylint", "2.15.10"), (8000, "pylint", "3.0.3")],
    "pydata/xarray": [(0, "xarray", "0.16.2"), (5000, "xarray", "2022.6.0"), (7000, "xarray", "2023.1.0")],
    "mwaskom/seaborn": [(0, "seaborn", "0.12.2")],
    "psf/requests": [(0, "requests", "2.3.0"), (2000, "requests", "2.10.0"), (3000, "requests", "2.27.1")],
    "pallets/flask": [(0, "Flask", "2.3.3")],
}

# Where a wheel's top-level package lives in the repository, when not at the root.
PREFIX: dict[str, str] = {"matplotlib/matplotlib": "lib/", "pytest-dev/pytest": "src/", "pallets/flask": "src/"}
# Python versions to try for a platform wheel, newest first (old releases have no 3.11 wheel).
PYTHONS = ("3.11", "3.9", "3.8", "3.7")


@dataclass(frozen=True)
class Release:
    repo: str
    project: str
    version: str


def release_for(repo: str, pr: int) -> Release | None:
    table = RELEASES.get(repo)
    if not table:
        return None
    k = bisect.bisect_right([row[0] for row in table], pr) - 1
    _, project, version = table[max(k, 0)]
    return Release(repo, project, version)


def _wheel(cache: Path, rel: Release) -> Path:
    folder = cache / f"{rel.project}-{rel.version}"
    found = sorted(folder.glob("*.whl"))
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    for py in PYTHONS:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
               "--python-version", py, "--platform", "manylinux2014_x86_64", "--platform", "any",
               "-d", str(folder), f"{rel.project}=={rel.version}"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        found = sorted(folder.glob("*.whl"))
        if found:
            return found[0]
        errors.append(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
    raise RuntimeError(f"no wheel for {rel.project}=={rel.version}: {errors[-1]}")


def load_source(cache: Path, rel: Release) -> list[SourceFile]:
    """The release's ``.py`` files under their repository paths."""
    prefix = PREFIX.get(rel.repo, "")
    files: list[SourceFile] = []
    with zipfile.ZipFile(_wheel(cache, rel)) as z:
        for name in sorted(z.namelist()):
            top = name.split("/", 1)[0]
            if not name.endswith(".py") or top.endswith((".dist-info", ".data")):
                continue
            try:
                text = z.read(name).decode("utf-8")
            except UnicodeDecodeError:
                continue
            if "\0" not in text:
                files.append(SourceFile(prefix + name, text))
    return files
