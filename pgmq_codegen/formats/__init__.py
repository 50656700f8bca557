"""Migration format writers, one module each; a module exposing ``WRITER`` is a format.

Adding a format is adding one module here (and its templates under
``templates/formats/``): it is found by name, nothing else needs editing.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil

from pgmq_codegen.errors import PgmqNotifyError
from pgmq_codegen.formats.base import MigrationWriter

_SKIP = {"base"}


def writers() -> dict[str, MigrationWriter]:
    """Every format writer, keyed by its ``--format`` name."""
    found: dict[str, MigrationWriter] = {}
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name in _SKIP or module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        writer = getattr(module, "WRITER", None)
        if writer is not None:
            found[writer.name] = writer
    return dict(sorted(found.items()))


def get(name: str) -> MigrationWriter:
    """The writer for ``name``; an unknown name raises with a suggestion."""
    known = writers()
    if name in known:
        return known[name]
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise PgmqNotifyError(f"unknown format {name!r}{hint} (formats: {', '.join(known)})")
