"""maas-gateway: a GraphQL + REST gateway in front of MAAS's boot-image API."""

__version__ = "0.1.0"
