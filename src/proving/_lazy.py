"""Lazy package exports (PEP 562): a package lists its public names and their modules, and
each module loads on the first use of one of its names.

It keeps ``import proving`` and the command line fast: importing one stats module, or
running ``proving --help``, does not load SciPy, FastAPI or Ibis through a package
``__init__``.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any


class _LazyPackage(types.ModuleType):
    """A package whose exported names win over its submodules of the same name.

    When ``proving.stats.analyze`` (the module) finishes loading, the import system binds
    it as the package attribute ``analyze``; an eager ``__init__`` would then rebind the
    function. This does the same: the export named like its module stays the export.
    """

    _exports: Mapping[str, str]

    def __setattr__(self, name: str, value: Any) -> None:
        exports = self.__dict__.get("_exports", {})
        if (
            isinstance(value, types.ModuleType)
            and exports.get(name) == value.__name__
            and hasattr(value, name)
        ):
            value = getattr(value, name)
        super().__setattr__(name, value)


def lazy_exports(
    package: str, exports: Mapping[str, str], *, exports_win: bool = False
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return ``(__getattr__, __dir__)`` for ``package``, given name -> defining module.

    With ``exports_win``, an export named like the submodule that defines it (the function
    ``analyze`` in the module ``analyze``) stays the export once that submodule is imported.
    Without it, Python's rule holds: an imported subpackage is the package attribute (so
    ``import proving.assign`` gives the subpackage, as users of ``proving.assign.*`` expect).
    """
    module = sys.modules[package]
    if exports_win:
        module.__class__ = _LazyPackage
        module.__dict__["_exports"] = exports
    namespace = module.__dict__

    def getattr_(name: str) -> Any:
        source = exports.get(name)
        if source is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source), name)
        namespace[name] = value  # later lookups skip __getattr__
        return value

    def dir_() -> list[str]:
        return sorted({n for n in namespace if n != "_exports"} | set(exports))

    return getattr_, dir_
