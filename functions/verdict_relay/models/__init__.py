"""Pydantic models shared by every layer: the canonical verdict and its parts."""
