"""Per-song arrays by name (log-mels, chunks, augmented copies, codec round trips), computed for
every song of a dataset through the validated cache.
"""
