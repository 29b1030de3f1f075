"""A package's public names, each imported from its module when first asked for (PEP 562).

Importing a package then costs only what it imports itself: `import worker_abstraction` does not load the
orchestrator, and a worker does not load the registry's server. The package lists its names under
`if TYPE_CHECKING:` imports as well, for type checkers and editors, and installs these functions only when
not type checking, since a module `__getattr__` would make any misspelt name type-check.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def exports(
    package: str, modules: Mapping[str, tuple[str, ...]]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The `__getattr__` and `__dir__` of `package`, giving each name `modules` lists (module -> names).

    Args:
        package: the package's `__name__`.
        modules: each module's full name and the names the package takes from it.
    """
    sources = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> object:
        module = sources.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # later look-ups find it without coming back here
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *sources})

    return __getattr__, __dir__
