"""Verdict Relay: asynchronous content-moderation jobs in, one canonical stored and published verdict out."""

__version__ = "0.1.0"
