"""Resolving and serializing the optional per-weight regularizers and constraints.

The regularizer and constraint modules own the Keras names; this keeps layers' code to one call each.
"""

from __future__ import annotations

from typing import Any

from lstmtext.errors import ConfigError


def resolve_regularizer(identifier: Any) -> Any:
    if identifier is None:
        return None
    from lstmtext.layers import regularizers

    return regularizers.get(identifier)


def resolve_constraint(identifier: Any) -> Any:
    if identifier is None:
        return None
    from lstmtext.layers import constraints

    return constraints.get(identifier)


def serialize_option(obj: Any) -> Any:
    """JSON form of a regularizer/constraint object (``None`` stays ``None``)."""
    if obj is None:
        return None
    get_config = getattr(obj, "get_config", None)
    if get_config is None:
        raise ConfigError(f"{obj!r} has no get_config() and cannot be saved in a config")
    return {"class_name": type(obj).__name__, "config": get_config()}
