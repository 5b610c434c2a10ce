"""The key/value store behind ``db.kv``, ``tx.kv`` and ``snap.kv``: versions in
memory (memtable), sorted runs in the data file, the store versions readers pin,
the views, and the WAL payload of its changes."""
