"""Risk controls: pre-trade limits, daily-loss and drawdown halts, kill switches."""
