"""State backends: `MemoryBackend` (one process) and `RedisBackend` (all workers)."""
