"""Access to the shipped templates through importlib.resources.

The top-level ``templates/`` folder is reached through the symlink
``pgmq_codegen/templates``: the wheel ships it as package data at that same
place, so a source checkout, an editable install and an installed wheel all
find the templates one way.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable


def templates_root() -> Traversable:
    """The folder that holds ``sql/``, ``formats/`` and ``config/`` templates."""
    root = resources.files("pgmq_codegen").joinpath("templates")
    if not root.is_dir():
        raise FileNotFoundError(
            "pgmq-codegen's templates are missing: the package was installed without "
            "package data; reinstall it (pip install --force-reinstall pgmq-codegen)"
        )
    return root


def read_template(name: str) -> str:
    """The text of one template, by its path below the templates folder."""
    node = templates_root()
    for part in name.split("/"):
        node = node.joinpath(part)
    return node.read_text(encoding="utf-8")
