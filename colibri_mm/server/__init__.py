"""``coldb-server``: the engine as a network service (Redis protocol, HTTP, Flight)."""
