"""Many hosts on one PostgreSQL (issue 18): CLI workers in network namespaces drain a queue while backends die.

The test makes its own "hosts": one network namespace each, joined to this
machine by a veth pair that carries a /30 of 198.18.0.0/15 (RFC 2544's
benchmarking range, never routed on the Internet; the test picks a /24 that
no interface of this machine uses). It starts a PostgreSQL of its own that
listens on 127.0.0.1 and on the machine's end of every pair, and runs
``pgmq-codegen worker`` processes inside the namespaces, so each reaches the
server from its own address. No traffic leaves this machine.

Four producers send; a killer terminates random backends of the workers
(LISTEN, claim and acknowledgement connections alike) while they drain.
Every message must be handled exactly once and none lost. The claim rate is
printed (``pytest -s``). The default size is the issue's: 8 hosts x 4 workers
and 100,000 messages (on this 2-core machine, quiet: drained in 28 s, about
3,600 claims/s, 79 backends killed; the whole test 43 s). ``PGMQ_SCALE_HOSTS``,
``PGMQ_SCALE_PROCESSES`` and ``PGMQ_SCALE_MESSAGES`` change it.
Needs root and ``ip`` (iproute2); skips with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from pgmq_codegen.throwaway_postgres import LocalPostgres
from pgmq_codegen.vendored_pgmq import install_pgmq
from pgmq_runtime import consumer as consumer_mod
from pgmq_runtime import listener as listener_mod
from pgmq_runtime.config import PgmqNotifyConfig
from tests.conftest import install

ROOT = Path(__file__).resolve().parents[2]
HOSTS = int(os.environ.get("PGMQ_SCALE_HOSTS", "8"))
PROCESSES = int(os.environ.get("PGMQ_SCALE_PROCESSES", "4"))
MESSAGES = int(os.environ.get("PGMQ_SCALE_MESSAGES", "100000"))
PRODUCERS = 4
BATCH = 50
VISIBILITY_TIMEOUT = 10  # a claim whose reply died with its backend comes back after this
WAIT_SECONDS = 240  # safety net: fail instead of hanging
QUEUE = "jobs_queue"
DATABASE = "hosts"
RUNTIME_APPS = [listener_mod.APPLICATION_NAME, consumer_mod.APPLICATION_NAME]

pytestmark = pytest.mark.slow


@dataclass
class Network:
    """The namespaces and veth pairs the test made, and the addresses on them."""

    tag: str
    subnet: str  # the /24 the pairs' /30s come from
    namespaces: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    server_addresses: list[str] = field(default_factory=list)


def _ip(*args: str, netns: str | None = None) -> None:
    command = ["ip", *(["netns", "exec", netns, "ip"] if netns else []), *args]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=30)


def _free_subnet() -> str:
    """A /24 of 198.18.0.0/15 that no address or route of this machine touches."""
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    used += subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True).stdout
    for third in random.Random(os.getpid()).sample(range(256), 256):
        prefix = f"198.18.{third}."
        if prefix not in used:
            return prefix
    pytest.skip("no free /24 in 198.18.0.0/16 for the test's hosts")


@contextlib.contextmanager
def hosts(count: int) -> Iterator[Network]:
    """``count`` network namespaces, each with a veth pair to this machine; all removed on exit, even on failure."""
    if os.geteuid() != 0:
        pytest.skip("creating network namespaces needs root (CI runs as root)")
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command (apt-get install iproute2)")
    net = Network(tag=f"pq{os.getpid() % 100000}", subnet=_free_subnet())
    try:
        for h in range(count):
            ns, outside, inside = f"{net.tag}h{h}", f"{net.tag}h{h}o", f"{net.tag}h{h}i"
            try:
                _ip("netns", "add", ns)
            except subprocess.CalledProcessError as exc:
                if h == 0:
                    pytest.skip(f"cannot create a network namespace here: {exc.stderr.strip()}")
                raise
            net.namespaces.append(ns)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            net.links.append(outside)
            _ip("link", "set", inside, "netns", ns)
            server, host = f"{net.subnet}{4 * h + 1}", f"{net.subnet}{4 * h + 2}"
            _ip("addr", "add", f"{server}/30", "dev", outside)
            _ip("link", "set", outside, "up")
            _ip("addr", "add", f"{host}/30", "dev", inside, netns=ns)
            _ip("link", "set", inside, "up", netns=ns)
            _ip("link", "set", "lo", "up", netns=ns)
            net.server_addresses.append(server)
        yield net
    finally:
        for link in net.links:
            subprocess.run(["ip", "link", "del", link], capture_output=True, timeout=30)
        for ns in net.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


@contextlib.contextmanager
def server_on(net: Network, bindir: Path | None) -> Iterator[LocalPostgres]:
    """A PostgreSQL of this test's own, listening on 127.0.0.1 and on the machine's end of every pair."""
    addresses = ",".join(["127.0.0.1", *net.server_addresses])
    pg = LocalPostgres(settings={"listen_addresses": f"'{addresses}'", "max_connections": "200"}, bindir=bindir)
    pg.start()
    try:
        with (pg.datadir / "pg_hba.conf").open("a", encoding="utf-8") as hba:
            hba.write(f"host all all {net.subnet}0/24 trust\n")
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
        yield pg
    finally:
        pg.stop()


@dataclass
class Chaos:
    kills: int = 0
    stop: threading.Event = field(default_factory=threading.Event)


def kill_backends(dsn: str, subnet: str, chaos: Chaos, seed: int) -> None:
    """Terminate 1-2 random runtime backends of the workers every 0.2-0.6 s until told to stop."""
    rng = random.Random(seed)
    with psycopg.connect(dsn, autocommit=True) as conn:
        while not chaos.stop.wait(rng.uniform(0.2, 0.6)):
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = ANY(%s) AND client_addr <<= %s::inet",
                (RUNTIME_APPS, f"{subnet}0/24"),
            ).fetchall()
            for (pid,) in rng.sample(rows, min(len(rows), rng.randint(1, 2))):
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
                chaos.kills += 1


def produce(dsn: str, producer: int, count: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for start in range(0, count, BATCH):
            bodies = [json.dumps({"p": producer, "n": n}) for n in range(start, min(start + BATCH, count))]
            conn.execute("SELECT count(*) FROM pgmq.send_batch(%s, %s::jsonb[])", (QUEUE, bodies))


def handled(logs: list[Path]) -> list[tuple[int, int]]:
    """(msg_id, read_ct) of every handler call so far, from every worker's log."""
    out = []
    for log in logs:
        for line in log.read_text(encoding="utf-8").splitlines():
            msg_id, read_ct = line.split()
            out.append((int(msg_id), int(read_ct)))
    return out


def _outputs(folder: Path) -> str:
    """The workers' own output, for a failure message."""
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(folder.glob("*.out")))


def test_cli_workers_on_several_hosts_handle_every_message_once_while_backends_die(pg_server, tmp_path):
    config = PgmqNotifyConfig()
    with hosts(HOSTS) as net, server_on(net, pg_server.bindir) as pg:
        dsn = pg.dsn_for(DATABASE)
        install_pgmq(dsn)
        install(dsn, config)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT pgmq.create(%s)", (QUEUE,))
        logs: list[Path] = []
        workers: list[subprocess.Popen[bytes]] = []
        stack = contextlib.ExitStack()
        chaos = Chaos()
        killer: threading.Thread | None = None
        try:
            for h, ns in enumerate(net.namespaces):
                worker_dsn = f"postgresql://postgres@{net.server_addresses[h]}:{pg.port}/{DATABASE}"
                for p in range(PROCESSES):
                    log = tmp_path / f"host{h}-worker{p}.log"
                    log.touch()
                    logs.append(log)
                    env = {**os.environ, "WORKER_LOG": str(log), "PYTHONPATH": str(ROOT)}
                    command = ["ip", "netns", "exec", ns, sys.executable, "-m", "pgmq_codegen.cli", "worker"]
                    command += ["tests.integration.worker_handlers:record", "--dsn", worker_dsn, "--queue", QUEUE]
                    command += ["--concurrency", "8", "--visibility-timeout", str(VISIBILITY_TIMEOUT)]
                    # Files, not pipes: the kills make workers log, and a full pipe would block them.
                    out = stack.enter_context((tmp_path / f"host{h}-worker{p}.out").open("w"))
                    workers.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT))
            with psycopg.connect(dsn, autocommit=True) as conn:
                # Every worker's LISTEN connection is up, each from its host's own address.
                deadline = time.monotonic() + WAIT_SECONDS
                while True:
                    row = conn.execute(
                        "SELECT count(*), count(DISTINCT client_addr) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND application_name = %s",
                        (listener_mod.APPLICATION_NAME,),
                    ).fetchone()
                    assert row is not None
                    if row == (HOSTS * PROCESSES, HOSTS):
                        break
                    assert all(w.poll() is None for w in workers), _outputs(tmp_path)
                    assert time.monotonic() < deadline, f"workers not all connected: {row}"
                    time.sleep(0.1)
            seed = random.randrange(2**32)
            print(f"many-hosts seed {seed}: {HOSTS} hosts x {PROCESSES} workers, {MESSAGES} messages")
            killer = threading.Thread(target=kill_backends, args=(dsn, net.subnet, chaos, seed), daemon=True)
            killer.start()
            started = time.monotonic()
            per_producer = MESSAGES // PRODUCERS
            producers = [
                threading.Thread(target=produce, args=(dsn, i, per_producer), daemon=True) for i in range(PRODUCERS)
            ]
            for thread in producers:
                thread.start()
            for thread in producers:
                thread.join(WAIT_SECONDS)
            sent = per_producer * PRODUCERS
            deadline = time.monotonic() + WAIT_SECONDS
            while len(calls := handled(logs)) < sent:
                if len(calls) >= 0.9 * sent:
                    chaos.stop.set()  # the tail drains without new kills (a lost claim waits out its timeout)
                assert all(w.poll() is None for w in workers), "a worker exited"
                assert time.monotonic() < deadline, f"only {len(calls)} of {sent} handled"
                time.sleep(0.2)
            seconds = time.monotonic() - started
            chaos.stop.set()
            with psycopg.connect(dsn, autocommit=True) as conn:
                # Acknowledgements are batched: wait for the last ones to commit.
                while (left := conn.execute(f"SELECT count(*) FROM pgmq.q_{QUEUE}").fetchone()) != (0,):
                    assert time.monotonic() < deadline, f"{left} message(s) left in the queue"
                    time.sleep(0.2)
        finally:
            chaos.stop.set()
            if killer is not None:
                killer.join(10)
            for w in workers:
                if w.poll() is None:
                    w.send_signal(signal.SIGTERM)
            for w in workers:
                try:
                    w.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    w.kill()
                    w.wait()
            stack.close()
    calls = handled(logs)
    ids = Counter(msg_id for msg_id, _ in calls)
    per_host = [len(handled(logs[h * PROCESSES : (h + 1) * PROCESSES])) for h in range(HOSTS)]
    redelivered = sum(1 for _, read_ct in calls if read_ct > 1)
    print(
        f"many hosts: {sent} messages handled in {seconds:.1f} s ({sent / seconds:,.0f} claims/s) by "
        f"{HOSTS} x {PROCESSES} CLI workers (per host: {per_host}); {chaos.kills} backends killed; "
        f"{redelivered} claimed again after a lost claim"
    )
    assert [w.returncode for w in workers] == [0] * len(workers), _outputs(tmp_path)
    assert sorted(ids) == list(range(1, sent + 1))  # none lost
    assert max(ids.values()) == 1, [i for i, n in ids.items() if n > 1][:20]  # none twice
    assert chaos.kills > 0
