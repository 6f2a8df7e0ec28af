"""MAAS 2.0 boot-image API simulator: a separate ASGI product that never imports the gateway."""

from app.simulator.app import Simulator, create_simulator
from app.simulator.config import SUPPORTED_VERSIONS, SimulatorConfig
from app.simulator.faults import FaultRule

__all__ = ["SUPPORTED_VERSIONS", "FaultRule", "Simulator", "SimulatorConfig", "create_simulator"]
