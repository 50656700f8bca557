"""One TOML file for both: what tasker-pgmq-cli's ``validate-config`` accepts, ours accepts, same channels.

The channel names on the Rust side come from the crate's own
``PgmqNotifyConfig`` (``tasker_listener --print-channels``); ours from
:class:`pgmq_runtime.config.PgmqNotifyConfig` loaded from the same file.
Where the two deliberately differ (a queue the pattern does not match, limits
that tasker accepts and then breaks on), the tests say so.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.errors import ConfigError
from tests.interop.conftest import crate_channels, tasker_cli, tasker_config_toml

CASES = [
    pytest.param(None, r"(?P<namespace>\w+)_queue", ["orders_queue", "billing_v2_queue", "x_queue"], id="defaults"),
    pytest.param("myapp", r"^(?P<namespace>[a-z]+)_jobs$", ["billing_jobs", "mail_jobs"], id="prefix-anchored"),
    pytest.param("tenant.v2", r"(?P<namespace>[A-Za-z]+)_", ["Orders_Queue", "eu_orders"], id="dotted-mixed-case"),
    pytest.param("p" * 20, r"^(?P<namespace>[a-z]+)_q$", ["ab_q"], id="longest-crate-prefix"),
]


def _our_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgmq_codegen.cli", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
        timeout=60,
    )


@pytest.mark.parametrize(("prefix", "pattern", "queues"), CASES)
def test_a_file_tasker_accepts_we_accept_with_the_same_channel_names(tasker, tmp_path, prefix, pattern, queues):
    path = tmp_path / "pgmq.toml"
    path.write_text(tasker_config_toml(prefix=prefix, pattern=pattern), encoding="utf-8")
    theirs = tasker_cli(tasker, "validate-config", str(path))
    assert theirs.returncode == 0, theirs.stdout + theirs.stderr
    ours = _our_cli("validate-config", str(path))
    assert ours.returncode == 0, ours.stdout + ours.stderr
    config = PgmqNotifyConfig.from_file(path)
    assert (config.channels_prefix, config.queue_naming_pattern) == (prefix, pattern)

    crate = crate_channels(tasker, prefix=prefix, pattern=pattern, queues=queues)
    assert crate["validate"] == {"ok": None}
    assert crate["queue_created"] == {"ok": config.queue_created_channel()}
    assert crate["global"] == {"ok": config.global_message_ready_channel()}
    for entry in crate["queues"]:
        namespace = config.extract_namespace(entry["queue"])
        assert entry["namespace"] == {"ok": namespace}, entry
        assert entry["channel"] == {"ok": config.message_ready_channel(namespace)}, entry
        assert config.channels_for_queue(entry["queue"])[0] == entry["channel"]["ok"]


def test_our_extra_keys_do_not_disturb_tasker_and_a_pattern_miss_is_our_default_namespace(tasker, tmp_path):
    path = tmp_path / "pgmq.toml"
    path.write_text(
        "queue_naming_pattern = '(?P<namespace>\\w+)_queue'\n"
        'channels_prefix = "myapp"\n'
        "max_payload_size = 7800\n"
        "include_metadata = true\n"
        "# ours only; tasker-pgmq-cli ignores unknown keys\n"
        'mode = "both"\n'
        'default_namespace = "misc"\n'
        'schema = "pgmq_notify"\n'
        'include_payload = "never"\n'
        "global_channel = true\n"
        "[migration]\n"
        "include_rollback = false\n"
        'name_prefix = "add_pgmq_notifications"\n',
        encoding="utf-8",
    )
    assert tasker_cli(tasker, "validate-config", str(path)).returncode == 0
    config = PgmqNotifyConfig.from_file(path)
    assert (config.mode, config.default_namespace, config.include_payload) == ("both", "misc", "never")

    (entry,) = crate_channels(tasker, prefix="myapp", queues=["nomatch"])["queues"]
    # The crate's config has no default: extract_namespace is an error. Its SQL said 'default'; ours says
    # default_namespace, in SQL and Python alike, so a Rust listener for it listens on that namespace.
    assert "Invalid namespace" in entry["namespace"]["error"]
    assert config.extract_namespace("nomatch") == "misc"
    crate = crate_channels(tasker, prefix="myapp", namespaces=["misc"])
    assert crate["namespaces"][0]["channel"] == {"ok": config.message_ready_channel("misc")}


@pytest.mark.parametrize(
    ("line", "key"),
    [
        # No 'namespace' group: tasker's SQL would take group 1, its crate would find no namespace.
        ("queue_naming_pattern = '(\\w+)_queue'", "queue_naming_pattern"),
        # Not a channel name: tasker accepts it and fails at LISTEN/NOTIFY time.
        ('channels_prefix = "bad;prefix"', "channels_prefix"),
        # tasker silently caps this to 7800; PostgreSQL's limit is 8000 bytes.
        ("max_payload_size = 100000", "max_payload_size"),
        # tasker accepts it and then truncates every event into invalid JSON.
        ("max_payload_size = 200", "max_payload_size"),
        # A lazy quantifier: PostgreSQL's regex engine and Python's/Rust's read it differently.
        ("queue_naming_pattern = '^(?P<namespace>\\w+?)_q$'", "queue_naming_pattern"),
    ],
)
def test_files_tasker_accepts_but_that_break_at_run_time_are_refused_by_us_with_the_key(tasker, tmp_path, line, key):
    name = line.split(" = ")[0]
    lines = tasker_config_toml().splitlines()
    if not any(existing.startswith(name + " ") for existing in lines):
        lines.insert(0, f"{name} = ")
    text = "\n".join(line if existing.startswith(name + " ") else existing for existing in lines)
    path = tmp_path / "pgmq.toml"
    path.write_text(text, encoding="utf-8")
    assert tasker_cli(tasker, "validate-config", str(path)).returncode == 0
    with pytest.raises(ConfigError) as caught:
        PgmqNotifyConfig.from_file(path)
    assert [problem.key for problem in caught.value.problems] == [key]


def test_a_prefix_over_20_bytes_is_ours_only_the_crate_listener_refuses_it(tasker):
    prefix = "tenant_" + "x" * 14  # 21 bytes: fits our 63-byte channel budget, not the crate's rule
    config = PgmqNotifyConfig.from_mapping({"channels_prefix": prefix})
    assert len(config.message_ready_channel("orders").encode()) <= 63
    crate = crate_channels(tasker, prefix=prefix)
    assert crate["validate"] == {"error": "Configuration error: channels_prefix must be 1-20 characters"}
