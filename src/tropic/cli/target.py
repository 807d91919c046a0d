"""What an offline command acts on: a store it opens (``--store``) or the server that owns one (``--url``).

A store has one owner. With ``--store`` the command opens the store and owns it while it runs (it is
refused, naming the owner, while another process does); with ``--url`` it acts through the owner's API.
"""

from __future__ import annotations

from typing import Annotated

import typer

from tropic.errors import InvalidArguments

Url = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Act through the server at this URL (the owner of its store) instead of opening a store.",
    ),
]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="TROPIC_TOKEN",
        show_envvar=True,
        help="With --url: bearer token (default: the token file written by `tropic serve`).",
    ),
]


def exactly_one(store: str | None, url: str | None) -> None:
    """Refuse both or neither of ``--store`` and ``--url``."""
    if (store is None) == (url is None):
        raise InvalidArguments(
            "give exactly one of --store (this command opens the store and owns it while it runs) "
            "or --url (it acts through the server that owns the store)"
        )
