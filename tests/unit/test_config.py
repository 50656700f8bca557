"""Config validation: every problem named with its key and reason."""

from __future__ import annotations

import pytest

from pgmq_codegen import init_config
from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.errors import ConfigError

TASKER_CONFIG = r"""
queue_naming_pattern = "(?P<namespace>\\w+)_queue"
channels_prefix = "myapp"
max_payload_size = 7800
include_metadata = true

[migration]
include_rollback = true
name_prefix = "add_pgmq_notifications"
"""


def problems(text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        PgmqNotifyConfig.from_toml(text)
    return {p.key: p.reason for p in info.value.problems}


def test_an_empty_file_gives_the_defaults():
    assert PgmqNotifyConfig.from_toml("") == PgmqNotifyConfig()


def test_the_default_config_file_parses_to_the_defaults():
    assert PgmqNotifyConfig.from_toml(init_config.default_config_text()) == PgmqNotifyConfig()


def test_a_tasker_pgmq_cli_config_validates_unchanged():
    config = PgmqNotifyConfig.from_toml(TASKER_CONFIG)
    assert config.channels_prefix == "myapp"
    assert config.queue_created_channel() == "myapp.pgmq_queue_created"
    assert config.channels_for_queue("orders_queue") == ["myapp.pgmq_message_ready.orders", "myapp.pgmq_message_ready"]


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ('queue_naming_pattern = "(?P<namespace>\\\\w+"', "queue_naming_pattern", "does not compile"),
        ('queue_naming_pattern = "(\\\\w+)_queue"', "queue_naming_pattern", "named group"),
        ('queue_naming_pattern = "(?P<namespace>\\\\w+?)_q"', "queue_naming_pattern", "lazy"),
        ('queue_naming_pattern = "(?P<namespace>\\\\w+)(?=_q)"', "queue_naming_pattern", "lookahead"),
        ('queue_naming_pattern = "(?P<namespace>\\\\w)\\\\1"', "queue_naming_pattern", "backreference"),
        ('queue_naming_pattern = "(?i)(?P<namespace>\\\\w+)"', "queue_naming_pattern", "inline flags"),
        ('queue_naming_pattern = "(?P<namespace>\\\\w+)\\\\b"', "queue_naming_pattern", "word boundaries"),
        ('channels_prefix = "my app"', "channels_prefix", "letters, digits"),
        ('channels_prefix = "9lives"', "channels_prefix", "start with a letter"),
        ('channels_prefix = "' + "p" * 40 + '"', "channels_prefix", "63-byte"),
        ("max_payload_size = 8000", "max_payload_size", "below 8000"),
        ("max_payload_size = 100", "max_payload_size", "at least"),
        ('max_payload_size = "7800"', "max_payload_size", "an integer"),
        ("include_metadata = 1", "include_metadata", "true or false"),
        ('schema = "Notify"', "schema", "lower case"),
        ('schema = "pgmq"', "schema", "reserved"),
        ('schema = "' + "s" * 41 + '"', "schema", "longer than"),
        ('mode = "trigers"', "mode", "did you mean 'trigger'"),
        ('include_payload = "always"', "include_payload", "'auto', 'never'"),
        ('default_namespace = "' + "d" * 50 + '"', "default_namespace", "63-byte"),
        ('queue_pattern = "x"', "queue_pattern", "did you mean 'queue_naming_pattern'"),
        (
            "[migration]\ninclude_rolback = true",
            "migration.include_rolback",
            "did you mean 'migration.include_rollback'",
        ),
        ('[migration]\nname_prefix = "bad name"', "migration.name_prefix", "letters, digits"),
        ("migration = 3", "migration", "must be a table"),
        ("coalesce_ms = -1", "coalesce_ms", "between 0 (off) and 60000"),
        ("coalesce_ms = 60001", "coalesce_ms", "between 0 (off) and 60000"),
        ('default_namespace = "a\\nb"', "default_namespace", "control characters"),
    ],
)
def test_each_invalid_value_is_named_with_its_reason(text, key, reason):
    found = problems(text)
    assert key in found, found
    assert reason in found[key]


def test_every_problem_is_reported_in_one_run():
    found = problems('mode = "x"\nmax_payload_size = 9000\nschema = "X"\nbogus = 1\n')
    assert set(found) == {"mode", "max_payload_size", "schema", "bogus"}


def test_invalid_toml_names_the_file():
    with pytest.raises(ConfigError, match="not valid TOML"):
        PgmqNotifyConfig.from_toml("mode = ", source="x.toml")


def test_channels_and_namespaces():
    config = PgmqNotifyConfig(channels_prefix="app", default_namespace="misc")
    assert config.extract_namespace("orders_queue") == "orders"
    assert config.extract_namespace("nothing-here") == "misc"
    assert config.global_message_ready_channel() == "app.pgmq_message_ready"
    long = config.message_ready_channel("n" * 80)
    assert len(long.encode()) == 63 and long.startswith("app.pgmq_message_ready.nnn") and "~" in long
    no_global = PgmqNotifyConfig(global_channel=False)
    assert no_global.channels_for_queue("a_queue") == ["pgmq_message_ready.a"]


def test_fingerprint_follows_sql_settings_only():
    base = PgmqNotifyConfig()
    assert base.fingerprint() == PgmqNotifyConfig().fingerprint()
    assert base.fingerprint() != PgmqNotifyConfig(channels_prefix="x").fingerprint()
    renamed = PgmqNotifyConfig.from_toml('[migration]\nname_prefix = "other"')
    assert renamed.fingerprint() == base.fingerprint()
