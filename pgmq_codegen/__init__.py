"""pgmq-codegen: generate, install-check and lay out PGMQ notification SQL."""

from __future__ import annotations

__version__ = "0.1.0"
