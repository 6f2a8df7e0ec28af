"""Fixtures for the command line's tests: the REST tests' gateway, which uploads in small chunks."""

from tests.rest.conftest import gateway, start_gateway

__all__ = ["gateway", "start_gateway"]
