"""QuantDesk: a self-hosted algorithmic trading platform."""

__version__ = "0.1.0"
