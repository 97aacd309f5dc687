"""Broker adapters; the paper broker fills against the live (or replayed) market."""
