"""Storage: the file layer every OS file operation goes through (and its
fault-injecting twin for tests), the meta slots, the page file mapped read-only,
the extent allocator and the catalog of a checkpoint."""
