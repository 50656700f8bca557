"""pgmq_runtime: listen to pgmq-codegen's notifications and consume PGMQ messages without loss."""

from __future__ import annotations

from pgmq_runtime.config import MigrationConfig, PgmqNotifyConfig, load_config
from pgmq_runtime.consumer import ClaimedMessage, PgmqConsumer
from pgmq_runtime.errors import (
    ChannelNameError,
    ConfigError,
    ConfigProblem,
    ConsumerError,
    ListenerError,
    PgmqNotifyError,
)
from pgmq_runtime.events import (
    BatchReadyEvent,
    InvalidEvent,
    ListenerGap,
    ListenerItem,
    ListenerOverflow,
    ListenerReconnected,
    MessageReadyEvent,
    MessageWithPayloadEvent,
    PgmqEvent,
    QueueCreatedEvent,
    parse_event,
)
from pgmq_runtime.listener import EventSource, ListenerStats, PgmqNotifyListener, SelfCheckResult
from pgmq_runtime.retries import RetryPolicy
from pgmq_runtime.stats import ConsumerStats

__all__ = [
    "BatchReadyEvent",
    "ChannelNameError",
    "ClaimedMessage",
    "ConfigError",
    "ConfigProblem",
    "ConsumerError",
    "ConsumerStats",
    "EventSource",
    "InvalidEvent",
    "ListenerError",
    "ListenerGap",
    "ListenerItem",
    "ListenerOverflow",
    "ListenerReconnected",
    "ListenerStats",
    "MessageReadyEvent",
    "MessageWithPayloadEvent",
    "MigrationConfig",
    "PgmqConsumer",
    "PgmqEvent",
    "PgmqNotifyConfig",
    "PgmqNotifyError",
    "PgmqNotifyListener",
    "QueueCreatedEvent",
    "RetryPolicy",
    "SelfCheckResult",
    "load_config",
    "parse_event",
]
