"""Internal helpers shared by every package (one of each): private files, the checksummed
container, optional imports, the thread-count default. Not public API."""
