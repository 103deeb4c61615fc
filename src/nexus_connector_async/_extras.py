"""Optional extras: a missing one is named with the command that installs it."""

from __future__ import annotations

import importlib.util

__all__ = ["missing_extra", "require_extra"]


def missing_extra(feature: str, extra: str) -> ImportError:
    """The error for `feature` used without `extra` installed (one line, says what to run)."""
    return ImportError(
        f"{feature} needs the {extra!r} extra: pip install 'nexus-connector-async[{extra}]'",
        name=f"nexus_connector_async[{extra}]",
    )


def has_module(module: str) -> bool:
    """Whether `module` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or `None` in sys.modules
        return False


def require_extra(feature: str, extra: str, *modules: str) -> None:
    """Raise `missing_extra(feature, extra)` unless every one of `modules` can be imported."""
    if not all(has_module(m) for m in modules):
        raise missing_extra(feature, extra)
