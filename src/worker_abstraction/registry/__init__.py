"""The registry: where workers announce themselves and orchestrators find them."""

from typing import TYPE_CHECKING

from worker_abstraction import _lazy

if TYPE_CHECKING:
    from worker_abstraction.registry.client import RegistryClient
    from worker_abstraction.registry.server import RegistryServer

__all__ = ["RegistryClient", "RegistryServer"]

# Imported on first use (see `_lazy`): workers and orchestrators, which only call a registry, do not load
# its server and the schema checks it makes.
if not TYPE_CHECKING:
    __getattr__, __dir__ = _lazy.exports(
        __name__,
        {
            "worker_abstraction.registry.client": ("RegistryClient",),
            "worker_abstraction.registry.server": ("RegistryServer",),
        },
    )
