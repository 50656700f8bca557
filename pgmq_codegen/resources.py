"""Access to the shipped templates through importlib.resources.

In a wheel the top-level ``templates/`` folder is packaged as
``pgmq_codegen/templates``; in a source checkout it sits beside the package.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path


def templates_root() -> Traversable:
    """The folder that holds ``sql/`` and ``formats/`` templates."""
    packaged = resources.files("pgmq_codegen").joinpath("templates")
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parent.parent / "templates"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(
        "pgmq-codegen's templates are missing: the package was installed without "
        "package data; reinstall it (pip install --force-reinstall pgmq-codegen)"
    )


def read_template(name: str) -> str:
    """The text of one template, by its path below the templates folder."""
    node = templates_root()
    for part in name.split("/"):
        node = node.joinpath(part)
    return node.read_text(encoding="utf-8")
