"""Reliability profiles: ``fast`` in `make test`, ``soak`` in `make soak` (RELIABILITY_PROFILE=soak for the
delivery suites, HYPOTHESIS_PROFILE=soak for the properties). Every test's logs, these suites' included, are
searched for secrets and signatures (``_no_secret_in_the_logs`` in tests/conftest.py).

The number of examples a property tries is the profile's, never the test's: a ``max_examples`` in a test's
``@settings`` would override the soak profile too.
"""

from __future__ import annotations

import os

from hypothesis import settings

SOAK = os.environ.get("RELIABILITY_PROFILE", "fast") == "soak"
DELIVERIES = 1000
JOBS = 10 if SOAK else 1
"""Jobs given DELIVERIES each, one after another."""

settings.register_profile("fast", max_examples=60, deadline=None, stateful_step_count=20)
settings.register_profile("soak", max_examples=2000, deadline=None, stateful_step_count=60)
"""``stateful_step_count``: the steps of each example of a state machine (test_stateful_publishing.py)."""
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))
