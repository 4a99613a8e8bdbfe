"""linkage: record linkage and data-silo reconciliation for the inbound-traveler loop."""

__version__ = "0.1.0"
