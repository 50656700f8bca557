"""pgmq_runtime: listen to pgmq-codegen's notifications and consume PGMQ messages without loss."""

from __future__ import annotations

from pgmq_runtime.client import HealthReport, PgmqNotifyClient, QueueInfo, QueueMetrics
from pgmq_runtime.config import MigrationConfig, PgmqNotifyConfig, load_config
from pgmq_runtime.consumer import ClaimedMessage, PgmqConsumer
from pgmq_runtime.errors import (
    ChannelNameError,
    ConfigError,
    ConfigProblem,
    ConnectionLostError,
    ConsumerError,
    DatabaseError,
    ListenerError,
    MessageNotSerializableError,
    MigrationMissingError,
    PgmqNotifyError,
    PgmqNotInstalledError,
    PoolClosedError,
    QueueNotFoundError,
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
    "ConnectionLostError",
    "ConsumerError",
    "ConsumerStats",
    "DatabaseError",
    "EventSource",
    "HealthReport",
    "InvalidEvent",
    "ListenerError",
    "ListenerGap",
    "ListenerItem",
    "ListenerOverflow",
    "ListenerReconnected",
    "ListenerStats",
    "MessageNotSerializableError",
    "MessageReadyEvent",
    "MessageWithPayloadEvent",
    "MigrationConfig",
    "MigrationMissingError",
    "PgmqConsumer",
    "PgmqEvent",
    "PgmqNotInstalledError",
    "PgmqNotifyClient",
    "PgmqNotifyConfig",
    "PgmqNotifyError",
    "PgmqNotifyListener",
    "PoolClosedError",
    "QueueCreatedEvent",
    "QueueInfo",
    "QueueMetrics",
    "QueueNotFoundError",
    "RetryPolicy",
    "SelfCheckResult",
    "load_config",
    "parse_event",
]
