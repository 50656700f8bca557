"""``pgmq-codegen init``: write the commented default config, as a typed function."""

from __future__ import annotations

from pathlib import Path

from pgmq_codegen.atomic_files import write_atomically
from pgmq_codegen.errors import PgmqNotifyError
from pgmq_codegen.formats.base import MigrationFile
from pgmq_codegen.resources import read_template
from pgmq_runtime.config import DEFAULT_CONFIG_FILE


def default_config_text() -> str:
    """The commented default config that ``init`` writes."""
    return read_template("config/pgmq-codegen.toml")


def init_config(path: Path = Path(DEFAULT_CONFIG_FILE), force: bool = False) -> Path:
    """Write the commented default config to ``path``; refuses to overwrite unless ``force``."""
    if path.exists() and not force:
        raise PgmqNotifyError(f"{path} exists already; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically([MigrationFile(path, default_config_text())], overwrite=force)
    return path
