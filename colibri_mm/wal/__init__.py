"""The write-ahead log: segment files, the writer with group commit, the reader that
recovery uses, and the follower that reader processes use to catch up."""
