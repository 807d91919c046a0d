"""How resources are named and addressed: the one naming rule, and the shape of a resource path.

A resource name is a DNS label (RFC 1123): 1 to 63 lowercase letters, digits and hyphens, starting and
ending with a letter or digit. Names travel into device APIs (libvirt domains and volumes), file names,
URLs and terminals, so anything that could mean something else there (``.``, ``..``, ``/``, NUL, line
breaks, bidirectional overrides, upper case that a device may fold) is refused where a name enters the
model. A path is ``/`` or ``/``-separated names; paths are checked for shape only (no empty, ``.`` or
``..`` segment, no control or format character), so that resources named before the rule stay reachable.
"""

from __future__ import annotations

import re
import unicodedata

from tropic.errors import InvalidArguments, UnknownResource

MAX_NAME_LENGTH = 63
_SHOWN = 40  # characters of a refused name or path quoted in an error (a 10,000-character name is not)


def name_pattern(max_length: int = MAX_NAME_LENGTH) -> str:
    """The rule as a regular expression over the whole name (JSON Schema ``pattern`` syntax too)."""
    if max_length < 1:
        raise ValueError(f"a name needs room for at least one character, got {max_length}")
    if max_length == 1:
        return "^[a-z0-9]$"
    return f"^[a-z0-9]([a-z0-9-]{{0,{max_length - 2}}}[a-z0-9])?$"


def name_rule(max_length: int = MAX_NAME_LENGTH) -> str:
    """The rule in words, for error messages and documentation."""
    return (
        "lowercase letters, digits and hyphens, starting and ending with a letter or digit "
        f"(at most {max_length} characters)"
    )


_NAME = re.compile(name_pattern()[1:-1])


def shown(text: str) -> str:
    """``text`` quoted for an error message: escaped (no control character reaches a terminal), and cut."""
    if len(text) <= _SHOWN:
        return ascii(text)
    return f"{text[:_SHOWN]!a}... ({len(text)} characters)"


def name_error(name: object, max_length: int = MAX_NAME_LENGTH) -> str | None:
    """Why ``name`` is not a valid resource name, or None when it is."""
    if not isinstance(name, str):
        return f"a name must be a string, got {type(name).__name__}"
    if len(name) > max_length:
        return f"{shown(name)} is longer than {max_length} characters"
    if not _NAME.fullmatch(name):
        return f"{shown(name)} is not a valid name: use {name_rule(max_length)}"
    return None


def check_name(name: object, *, parent: str, max_length: int = MAX_NAME_LENGTH) -> None:
    """Refuse a new resource name under ``parent`` that breaks the rule (:class:`InvalidArguments`)."""
    problem = name_error(name, max_length)
    if problem is not None:
        raise InvalidArguments(f"cannot add a resource under {shown(parent)}: {problem}", path=parent)


def _bad_character(segment: str) -> bool:
    # Cc: control (NUL, line breaks), Cf: format (bidirectional overrides), Cs: lone surrogates (bytes
    # that were not UTF-8), Zl/Zp: line and paragraph separators.
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in segment)


def path_error(path: object) -> str | None:
    """Why ``path`` is not a resource path, or None when it has the right shape."""
    if not isinstance(path, str):
        return f"a resource path must be a string, got {type(path).__name__}"
    if path == "/":
        return None
    if not path.startswith("/"):
        return "a resource path starts with / (e.g. /compute/us-east/host-01)"
    for segment in path[1:].split("/"):
        if segment == "":
            return "a resource path has no empty segment (no // and no trailing /)"
        if segment in (".", ".."):
            return f"{segment!r} is not a resource name: a path names each resource from the root"
        if _bad_character(segment):
            return "a resource path has no control, format or undecodable character"
    return None


def check_path(path: object) -> None:
    """Refuse a malformed path as naming no resource (:class:`UnknownResource`, a 404 in the API)."""
    problem = path_error(path)
    if problem is not None:
        # No ``path=``: the message quotes it escaped, while the raw text could hold a line break.
        raise UnknownResource(f"{shown(str(path))} is not a resource path: {problem}")
