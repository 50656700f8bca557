"""``pgmq-codegen validate-config``: check a config file, as a typed function."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pgmq_runtime.config import PgmqNotifyConfig

NAMESPACE_PLACEHOLDER = "<namespace>"


@dataclass(frozen=True)
class ValidConfig:
    """A config file that passed validation, and the channels its SQL notifies."""

    path: Path
    config: PgmqNotifyConfig
    channels: list[str]


def channels(config: PgmqNotifyConfig) -> list[str]:
    """Every channel the config's SQL notifies; one namespace channel stands for all."""
    names = [config.queue_created_channel()]
    if config.global_channel:
        names.append(config.global_message_ready_channel())
    names.append(config.message_ready_channel(NAMESPACE_PLACEHOLDER))
    return names


def validate_config(path: Path) -> ValidConfig:
    """Read and validate ``path``; raises ``ConfigError`` listing every problem."""
    config = PgmqNotifyConfig.from_file(path)
    return ValidConfig(path, config, channels(config))
