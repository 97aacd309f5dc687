"""Wallet and ledger: the stored double-entry journal, cached balances, and their API."""
