"""Transactions: the writer lock (threads and processes), the reader table of reader
processes, commit sequence numbers and their publication, the registry of live
snapshots, and WAL replay into whole transactions."""
