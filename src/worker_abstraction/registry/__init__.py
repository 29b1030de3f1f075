"""The registry: where workers announce themselves and orchestrators find them."""

from worker_abstraction.registry.client import RegistryClient
from worker_abstraction.registry.server import RegistryServer

__all__ = ["RegistryClient", "RegistryServer"]
