"""Reliability profiles: ``fast`` in `make test`, ``soak`` in `make soak` (RELIABILITY_PROFILE=soak)."""

from __future__ import annotations

import os

SOAK = os.environ.get("RELIABILITY_PROFILE", "fast") == "soak"
DELIVERIES = 1000
JOBS = 10 if SOAK else 1
"""Jobs given DELIVERIES each, one after another."""
