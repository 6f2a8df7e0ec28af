"""Fixtures for the entry pipeline's tests: the REST tests' gateway and its /api/v1 client."""

from tests.rest.conftest import api, gateway

__all__ = ["api", "gateway"]
