"""Trading charges: the broker-style calculator over HTTP and the command line."""
