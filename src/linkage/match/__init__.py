"""Matching: link the records of one person across all sources (block, compare, train, score, cluster)."""
