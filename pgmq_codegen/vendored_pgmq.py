"""Install PGMQ into a database from the SQL that the ``pgmq`` PyPI package ships."""

from __future__ import annotations

import psycopg

from pgmq_codegen.errors import PgmqNotifyError


def embedded_pgmq_sql() -> str:
    """PGMQ's install SQL, as vendored by the ``pgmq`` package (no extension build needed)."""
    try:
        from pgmq.install import get_embedded_install_sql
    except ImportError as exc:
        raise PgmqNotifyError("the 'pgmq' package is needed to install PGMQ: pip install pgmq") from exc
    return str(get_embedded_install_sql())


def install_pgmq(dsn: str) -> None:
    """Create PGMQ's schema, tables and functions in the database at ``dsn``."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('pgmq.meta') IS NOT NULL").fetchone()
        if exists and exists[0]:
            return
        with conn.transaction():
            conn.execute(embedded_pgmq_sql().encode())
