"""Orders, trades and positions: the order management system (OMS)."""
