"""Writing a set of files all or nothing, readable as the umask allows."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pgmq_codegen.errors import MigrationLayoutError
from pgmq_codegen.formats.base import MigrationFile


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomically(files: list[MigrationFile], overwrite: bool = False) -> None:
    """Write every file or none: temp files first, then renames, undone on failure.

    The files get the mode a plain ``open()`` would give them (0644 under umask
    022), not mkstemp's 0600: a migration tool or CI job running as another user
    must be able to read them.
    """
    mode = 0o666 & ~_current_umask()
    staged: list[tuple[Path, MigrationFile]] = []
    done: list[Path] = []
    try:
        for f in files:
            fd, tmp_name = tempfile.mkstemp(dir=f.path.parent, prefix=f".{f.path.name}.", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
                os.fchmod(fh.fileno(), mode)
                fh.write(f.content)
            staged.append((Path(tmp_name), f))
        for staged_path, f in staged:
            if f.path.exists() and not overwrite:
                raise MigrationLayoutError(f"refusing to overwrite {f.path}")
            os.replace(staged_path, f.path)
            done.append(f.path)
    except BaseException:
        for path in done:
            path.unlink(missing_ok=True)
        raise
    finally:
        for staged_path, _ in staged:
            staged_path.unlink(missing_ok=True)
