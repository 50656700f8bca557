"""pgmq_runtime: listen to pgmq-codegen's notifications and consume PGMQ messages without loss."""

from __future__ import annotations

from pgmq_runtime.config import MigrationConfig, PgmqNotifyConfig, load_config
from pgmq_runtime.errors import ConfigError, ConfigProblem, PgmqNotifyError

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "MigrationConfig",
    "PgmqNotifyConfig",
    "PgmqNotifyError",
    "load_config",
]
