"""Storage: the file layer every OS file operation goes through, and (as they land)
the page file, the meta slots and the allocator."""
