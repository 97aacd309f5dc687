"""Backtesting: the event-driven engine, the vectorized path, costs, metrics and reports."""
