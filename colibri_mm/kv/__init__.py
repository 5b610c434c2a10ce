"""The key/value store: the built-in table of byte keys and byte values behind
``db.kv``, ``tx.kv`` and ``snap.kv`` (and, later, the Redis protocol)."""
