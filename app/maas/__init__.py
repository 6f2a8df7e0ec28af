"""The MAAS 2.0 boot-image client layer: credentials, signing, typed calls and payload models."""

from app.maas.auth import MaasAuth, MaasCredentials
from app.maas.client import DEFAULT_CHUNK_SIZE, MaasClient, normalize_base_url
from app.maas.errors import map_failure
from app.maas.transport import DEFAULT_BACKEND, Backend

__all__ = [
    "DEFAULT_BACKEND",
    "DEFAULT_CHUNK_SIZE",
    "Backend",
    "MaasAuth",
    "MaasClient",
    "MaasCredentials",
    "map_failure",
    "normalize_base_url",
]
