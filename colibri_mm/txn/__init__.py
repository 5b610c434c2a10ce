"""Transactions: the writer lock (threads and processes), commit sequence numbers and
their publication, the registry of live snapshots, and WAL replay into transactions."""
