"""`python -m exercises handout DIR`: a copy of the project for students.

The copy has the project's files (those git tracks, plus new files git does not ignore; without git, the project
folder minus caches, virtual environments and run outputs), every exercise file replaced by its blank, the graders,
and none of what gives the answers away: no exercises/solutions/, no tests that grade the solutions
(tests/test_exercises*.py and their wrong-solution files), no progress or backups of whoever wrote the handout.
"""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
from pathlib import Path

from .registry import ROOT, all_exercises

PROJECT = ROOT.parent
EXCLUDE = ["exercises/solutions/*", "tests/test_exercises*", "tests/exercise_mistakes/*", "exercises/.progress.json*",
           "exercises/.backups/*"]
# Without git: what .gitignore lists, roughly, and git's own folder.
NOT_PROJECT = {".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".hypothesis", ".ruff_cache", "build", "dist"}


class HandoutError(Exception):
    pass


def project_files() -> list[str]:
    """Paths relative to the project, '/'-separated."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=PROJECT,
                             capture_output=True, check=True, timeout=60).stdout
        names = [n for n in out.decode("utf-8").split("\0") if n]
        if names:
            return names
    except (OSError, subprocess.SubprocessError, UnicodeDecodeError):
        pass
    names = []
    for path in PROJECT.rglob("*"):
        rel = path.relative_to(PROJECT)
        if path.is_file() and not NOT_PROJECT.intersection(rel.parts) and not rel.parts[0].startswith("out") \
                and not rel.name.endswith((".pyc", ".egg-info")):
            names.append(rel.as_posix())
    return sorted(names)


def write_handout(dest: Path) -> int:
    """Write the handout into `dest` (absent or empty); returns the number of files written."""
    dest = dest.resolve()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise HandoutError(f"{dest} exists and is not an empty folder")
    if dest == PROJECT or PROJECT in dest.parents:
        raise HandoutError(f"{dest} is inside the project; write the handout somewhere else")
    blanks = {f"exercises/{ex.path.name}": ex.blank for ex in all_exercises()}
    count = 0
    for name in project_files():
        if any(fnmatch.fnmatch(name, pattern) for pattern in EXCLUDE):
            continue
        source = blanks.get(name, PROJECT / name)
        if not source.is_file():  # deleted in the working tree, not yet in git
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        count += 1
    for name, blank in blanks.items():  # an exercise file the teacher's copy lacks
        if not (dest / name).exists():
            shutil.copy2(blank, dest / name)
            count += 1
    return count
