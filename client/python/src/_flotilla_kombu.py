"""Makes ``flotilla://`` a Kombu transport in every interpreter, without importing Kombu.

Kombu finds transports only in its own table (``kombu.transport.TRANSPORT_ALIASES``; it has no
entry points), and a Celery app that changes nothing but its broker URL never imports our
module. So the wheel installs ``flotilla_kombu.pth``, which imports this module at interpreter
start; it only adds a finder that, when ``kombu.transport`` is first imported, adds the
``flotilla`` alias right after the module runs. Cost at start: one tiny import, no Kombu.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.machinery import PathFinder, SourceFileLoader
from types import ModuleType
from typing import Any, Optional

ALIAS = "flotilla"
TRANSPORT = "flotilla.celery.transport:Transport"


def register(module: ModuleType) -> None:
    """Adds the alias to an imported ``kombu.transport`` (idempotent)."""
    aliases = getattr(module, "TRANSPORT_ALIASES", None)
    if isinstance(aliases, dict):
        aliases.setdefault(ALIAS, TRANSPORT)


class _KombuTransportFinder:
    """A meta path finder that acts on ``kombu.transport`` once, then removes itself."""

    @classmethod
    def find_spec(cls, name: str, path: Optional[Sequence[str]] = None, target: Any = None) -> Any:
        if name != "kombu.transport":
            return None
        if cls in sys.meta_path:
            sys.meta_path.remove(cls)
        spec = PathFinder.find_spec(name, path)
        loader = spec.loader if spec is not None else None
        if not isinstance(loader, SourceFileLoader):
            return spec  # an unusual install: `flotilla.celery` registers on import instead
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            register(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install() -> None:
    if "kombu.transport" in sys.modules:
        register(sys.modules["kombu.transport"])
    elif _KombuTransportFinder not in sys.meta_path:
        sys.meta_path.insert(0, _KombuTransportFinder)


install()
