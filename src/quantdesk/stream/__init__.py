"""Real-time streaming to clients: the WebSocket gateway over the event bus."""
