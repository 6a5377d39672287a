"""Each provider's plain facts, in one place: what its configuration needs, how far its callbacks are trusted,
how it is polled. The code reads them from here. A few rules of one provider's own are written where they
apply, by its name: the Azure policy handed to its adapter (``providers/registry.py``) and Azure's required
endpoint and team (``_unmet_requirements`` in ``config.py``), MPS's comma-free job ids (``models/jobs.py``).

Imported at every cold start (``config.py``, the handlers), so it imports the standard library only: no pydantic,
no adapters. What needs heavier imports stays where it is: the adapter (``providers/registry.py``), the
credential models (``CREDENTIAL_SHAPES`` in ``config.py``), the API client (``_BUILDERS`` in
``clients/factory.py``). ``providers/registry.py`` asserts at import that ``PROFILES`` lists the same names as the
registry, in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta


@dataclass(frozen=True, kw_only=True)
class ProviderProfile:
    """One provider's facts. The first four have no default: every provider decides them, and an entry without
    one fails with ``TypeError``. Every other one defaults to what a provider that does not set it gets."""

    name: str
    """The provider's name, as in ``ProviderName`` (``models/verdict.py``) and the registry."""
    calls_back: bool
    """Whether the provider sends callbacks: the same as its adapter's ``takes_callbacks`` (a test checks). Its
    providers-document entry may hold a ``callback`` block only if it does; ``trust`` only if it does and its
    callbacks may carry a result (not :attr:`fetch_only`)."""
    rate_limit_per_s: float
    """Requests per second per account to its API, from the provider's documentation where it gives one (read so
    that it holds whichever way an ambiguous one is meant), else said where it is set: ``rate_limit_per_s``'s
    default in its entry."""
    client_needs: str
    """What its API client needs besides credentials (``clients/factory.py``), as the hint in the message that
    refuses an entry without credentials (e.g. ``"region (or endpoint)"``). Only text: what an entry must hold is
    decided by ``_unmet_requirements`` (``config.py``)."""

    reads: frozenset[str] = frozenset()
    """The settings only some providers read that this one reads, as paths of its entry (``"region"``,
    ``"callback.seeds"``); ``callback`` and ``trust`` follow from :attr:`calls_back` and :attr:`fetch_only`. A
    setting some provider lists here is refused at the start in the entry of any provider that does not (a
    misplaced ``team`` or ``seeds`` would otherwise leave the provider it was meant for without it, silently).
    Default: none of them, only the settings every provider reads."""
    huawei_v3: bool = False
    """A Huawei v3 API, whose URLs hold the project id: an entry with credentials must hold ``project_id``.
    Default: no, and an entry without ``project_id`` passes the start (for a v3 API its client could then not be
    built, which stops every poll cycle)."""
    fetch_only: str | None = None
    """Why its callbacks never carry a result, for a provider whose every verdict is fetched with API
    credentials: an entry without credentials is refused at the start, with this reason. Default: its callbacks
    may carry one (an entry without credentials takes verdicts from callbacks alone)."""
    fetch_by_default: bool = False
    """Whether its callbacks default to ``trust: fetch`` when credentials are configured: the job is fetched from
    the API instead of taking the callback's body. Set it unless the provider's signature covers the result: with
    a URL token only, or a signature over the job alone, whoever holds the token or one signature would set the
    verdict. Default: ``trust: body``, an authenticated callback's body becomes the verdict."""
    region_example: str = "ap-southeast-1"
    """The region the start-check messages suggest. Default: Huawei's."""
    callback_content_types: tuple[str, ...] = ("application/json",)
    """The content types its callbacks come in (a request without one is let through, to its adapter's parser).
    Default: JSON only, a callback of another type gets 415."""
    callback_fetch_s: float = 2.0
    """The read timeout of the fetch right after a callback, which must fit inside the provider's deadline for
    acknowledging it. Default: 2 s; set it if the provider gives up on a callback sooner."""
    expire_after: timedelta | None = None
    """How long the provider keeps a job: an unfinished job older than this is expired. Default: an unfinished
    job is expired only once the provider says it does not know it."""
    discovery_horizon: timedelta | None = None
    """How far back the provider's job list reaches (a client that discovers jobs): discovery never starts
    before it, so after a long gap it lists what the provider still has at once. Default: no floor; after an
    outage discovery catches up a window a cycle through windows the provider no longer lists jobs for, and
    recent jobs are discovered late."""
    max_poll_interval_s: float | None = None
    """The provider's own cap on the poll backoff, below ``POLL_MAX_INTERVAL_SECONDS``. Default: the general
    cap (900 s)."""


_HUAWEI_V3_VIDEO = ProviderProfile(
    name="huawei-video",
    calls_back=True,
    # Huawei documents "video and audio 10 requests/s" per account, which may be one limit for both APIs: half
    # each holds either way (an account whose limit is 10 for each can set 10)
    rate_limit_per_s=5.0,
    client_needs="region (or endpoint) and project_id",
    reads=frozenset({"region", "project_id", "callback.seeds"}),
    huawei_v3=True,
    # Huawei's signature covers the job id and times, not the result
    fetch_by_default=True,
    # inside Huawei's 3 s acknowledgement deadline
    callback_fetch_s=1.5,
)

PROFILES: dict[str, ProviderProfile] = {
    profile.name: profile
    for profile in (
        _HUAWEI_V3_VIDEO,
        # the same v3 API, its audio jobs
        replace(_HUAWEI_V3_VIDEO, name="huawei-audio"),
        ProviderProfile(
            name="huawei-image-batch",
            # Huawei's image batches send no callbacks
            calls_back=False,
            # not documented: the v3 APIs' figure
            rate_limit_per_s=10.0,
            client_needs="region (or endpoint)",
            # project_id is optional: it scopes an IAM user's token
            reads=frozenset({"region", "project_id"}),
            # Huawei keeps image batch jobs 30 minutes, and asks to be polled every 30 s: at the general cap, a
            # job that finished late in its life would be gone before its next poll
            expire_after=timedelta(minutes=30),
            discovery_horizon=timedelta(minutes=30),
            max_poll_interval_s=30.0,
        ),
        ProviderProfile(
            name="alibaba-mps",
            calls_back=True,
            rate_limit_per_s=50.0,
            client_needs="region (or endpoint)",
            reads=frozenset(
                {"region", "batch_size", "callback.certificate_hosts", "callback.max_age_seconds"}
            ),
            fetch_only="an MNS notice names the job but never carries its result",
            region_example="cn-shanghai",
            # MNS pushes JSON, or XML / text
            callback_content_types=("application/json", "text/xml", "application/xml", "text/plain"),
            # inside MNS's 5 s acknowledgement deadline
            callback_fetch_s=3.0,
            # MPS lists three months of jobs
            discovery_horizon=timedelta(days=90),
        ),
        ProviderProfile(
            name="azure-review",
            calls_back=True,
            # not in its API reference: the standard (S0) tier's published 10 transactions/s (the free F0 tier
            # allows 1: set 1 for it)
            rate_limit_per_s=10.0,
            client_needs="endpoint and team",
            reads=frozenset({"team", "policy"}),
            # Azure signs nothing: its callbacks are authenticated by a URL token only
            fetch_by_default=True,
            # no acknowledgement deadline documented
            callback_fetch_s=3.0,
        ),
    )
}
"""Every provider's profile by name, in the registry's order."""
