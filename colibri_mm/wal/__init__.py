"""The write-ahead log: segment files, the writer with group commit, and the reader
that recovery (and, later, reader processes) use to replay records after an LSN."""
