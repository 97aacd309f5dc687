"""Risk tests reuse the order tests' fixtures: the demo universe, sessions, the paper broker."""

from tests.integration.orders.conftest import oms, paper, sessions, universe

__all__ = ["oms", "paper", "sessions", "universe"]
