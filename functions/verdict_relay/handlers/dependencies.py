"""What the handlers need, built once per cold start from the validated environment.

The providers document is re-read when older than ``PROVIDERS_CACHE_SECONDS`` (kept here, not in Powertools'
cache: each re-read fetches the secret), so a rotated callback secret takes effect without a redeploy. A re-read that fails (Secrets Manager throttled or
out of reach, a malformed new version) keeps the last valid document in use, logs the error and counts
``ProvidersReloadFailed``: a deployment that works never stops over one bad read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from verdict_relay.config import ProvidersConfig, Settings, load_providers_config, rate_limit
from verdict_relay.dal.archive import PayloadArchive
from verdict_relay.dal.certificates import CertificateCache
from verdict_relay.dal.publisher import VerdictPublisher
from verdict_relay.dal.store import JobStore
from verdict_relay.errors import ConfigurationError
from verdict_relay.logic.ingest import IngestService
from verdict_relay.logic.policy import VerdictPolicy
from verdict_relay.models.verdict import Suggestion
from verdict_relay.observability import count, logger
from verdict_relay.providers.profiles import PROFILES

if TYPE_CHECKING:
    # The poller's pieces are imported where they are used: the callback receiver's cold start never needs them.
    from verdict_relay.clients.base import FetchResult, ProviderClient
    from verdict_relay.dal.poll_queue import PollQueue
    from verdict_relay.logic.breaker import CircuitBreaker
    from verdict_relay.logic.callbacks import Fetcher
    from verdict_relay.logic.ingest import PublisherPort
    from verdict_relay.logic.poller import Poller

CALLBACK_RATE_SHARE = 0.1
"""Share of a provider's rate limit one receiver container may use for fetches right after callbacks."""
CALLBACK_MIN_RATE_PER_S = 1.0
"""The least a receiver container's fetches get (within the provider's own limit): a callback's fetch waits for
a token only about a second before its acknowledgement deadline, so a slower share would leave every second
callback in a row to the poller (Huawei's video and audio APIs at 5/s each, a tenth of which is 0.5/s)."""
CALLBACK_CONNECT_SECONDS = 0.5
RELOAD_RETRY_SECONDS = 30.0
"""After a failed re-read of the providers document, the next attempt comes this much later (or at the cache
age, if shorter): a throttled Secrets Manager is not asked again on every request."""


@dataclass
class Dependencies:
    settings: Settings
    session: boto3.session.Session
    store: JobStore
    ingest: IngestService
    certificates: CertificateCache
    _providers: ProvidersConfig | None = None
    _reload_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _breakers: dict[str, CircuitBreaker] = field(default_factory=dict)
    _discovery_windows: dict[str, timedelta] = field(default_factory=dict)
    _polled_alone: dict[str, dict[str, None]] = field(default_factory=dict)
    _callback_clients: dict[str, ProviderClient | None] = field(default_factory=dict)
    _callback_clients_source: ProvidersConfig | None = None
    _poll_clients: dict[str, ProviderClient] = field(default_factory=dict)
    _poll_clients_source: ProvidersConfig | None = None
    _clients_lock: threading.Lock = field(default_factory=threading.Lock)
    _poll_queue: PollQueue | None = None

    def providers(self) -> ProvidersConfig:
        """The providers document, re-read when older than ``PROVIDERS_CACHE_SECONDS``. Only the first read's
        failure is raised; a later one keeps the document last read."""
        with self._lock:
            now = time.monotonic()
            if self._providers is None or now >= self._reload_at:
                cache_seconds = self.settings.providers_cache_seconds
                try:
                    loaded = load_providers_config(self.settings)
                except ConfigurationError as exc:
                    if self._providers is None:
                        raise
                    count("ProvidersReloadFailed")
                    logger.error(
                        "providers document could not be re-read; the last valid one stays in use",
                        code=exc.code,
                        reason=exc.message,
                    )
                    self._reload_at = now + min(RELOAD_RETRY_SECONDS, cache_seconds)
                    return self._providers
                if loaded != self._providers and (shared := loaded.shared_callback_secrets()):
                    logger.warning(
                        "callback secrets listed by two providers: give each provider its own",
                        keys=shared,
                    )
                self._providers = loaded
                self._reload_at = now + cache_seconds
            return self._providers

    def callback_secrets(self, provider: str) -> list[str]:
        """The provider's callback tokens and seeds in the providers document as last loaded. Never a reload:
        storing a verdict must not wait on, or fail with, Secrets Manager."""
        loaded = self._providers
        return loaded.callback_secrets(provider) if loaded is not None else []

    def poller(self, *, build_all: bool = True) -> Poller:
        """A poller over every provider with API credentials, each polled at its rate limit.

        Clients and circuit breakers live as long as the container: a client's token bucket keeps counting
        across invocations (a new one would start with a full burst), its connections stay open, and a failing
        provider stays paused. Clients are rebuilt when the providers document is reloaded (rotated
        credentials). ``build_all=False`` builds a provider's client when first polled: a poll worker's batch
        is one provider's, so its cold start builds one client, not five.
        """
        from verdict_relay.logic.breaker import CircuitBreaker

        providers = self.providers()
        with self._clients_lock:
            if self._poll_clients_source != providers:
                self._poll_clients.clear()  # a reloaded, changed document: clients with the current credentials
                self._poll_clients_source = providers
        names = [name for name, entry in providers.providers.items() if entry.credentials is not None]
        clients = _ClientsOnFirstUse(names, lambda name: self._poll_client(name, providers))
        if build_all:
            for name in names:
                clients[name]  # a provider entry the client cannot work with fails here, not mid-cycle
        concurrency = {name: providers.providers[name].max_concurrency for name in names}
        for name in names:
            self._breakers.setdefault(name, CircuitBreaker())
        return self._new_poller(clients, concurrency)

    def sweeper(self) -> Poller:
        """A poller with no provider clients, built without the providers document: its cycle only sends the
        owed publishes, of every provider."""
        return self._new_poller({}, {}, count_unheard=False)

    def _new_poller(
        self, clients: Mapping[str, ProviderClient], concurrency: dict[str, int], count_unheard: bool = True
    ) -> Poller:
        from verdict_relay.logic.poller import Poller, PollSettings

        return Poller(
            self.store,
            self.ingest,
            clients,
            self._breakers,
            PollSettings(
                min_interval_s=self.settings.poll_min_interval_seconds,
                base_interval_s=self.settings.poll_base_interval_seconds,
                max_interval_s=self.settings.poll_max_interval_seconds,
                overdue_after=timedelta(hours=self.settings.job_overdue_hours),
                count_unheard=count_unheard,
            ),
            now=lambda: datetime.now(UTC),
            concurrency=concurrency,
            discovery_windows=self._discovery_windows,
            polled_alone=self._polled_alone,
        )

    def _poll_client(self, provider: str, providers: ProvidersConfig) -> ProviderClient:
        from verdict_relay.clients.factory import build_client

        with self._clients_lock:
            if provider not in self._poll_clients:
                client = build_client(provider, providers.providers[provider])
                if client is None:  # pragma: no cover - names are the providers with credentials
                    raise KeyError(provider)
                self._poll_clients[provider] = client
            return self._poll_clients[provider]

    def callback_fetcher(self, provider: str) -> Fetcher | None:
        """Fetches a job right after its callback, within the provider's acknowledgement deadline: one attempt,
        short timeouts, a small share of the provider's rate limit. None without API credentials. Like the poll
        clients, they are rebuilt when the providers document changes (rotated, added or removed credentials)."""
        providers = self.providers()
        with self._clients_lock:
            if self._callback_clients_source != providers:
                self._callback_clients.clear()
                self._callback_clients_source = providers
            if provider not in self._callback_clients:
                self._callback_clients[provider] = self._build_callback_client(provider, providers)
            client = self._callback_clients[provider]
        if client is None:
            return None
        from verdict_relay.clients.base import finish_within

        # The whole fetch, not only each answer, ends within one attempt's time: a wait for the rate limit's
        # next token, or the pages of a long Alibaba timeline, give up (the job is left due for the poller)
        # instead of running past the provider's acknowledgement deadline.
        budget = CALLBACK_CONNECT_SECONDS + PROFILES[provider].callback_fetch_s

        def fetch(job_ids: Sequence[str]) -> FetchResult:
            with finish_within(budget):
                return client.fetch(job_ids)

        return fetch

    def _build_callback_client(self, provider: str, providers: ProvidersConfig) -> ProviderClient | None:
        from verdict_relay.clients.factory import build_client
        from verdict_relay.clients.http import HttpOptions

        entry = providers.get(provider)
        if entry is None or entry.credentials is None:
            return None
        limit = rate_limit(provider, entry)
        share = min(limit, max(limit * CALLBACK_RATE_SHARE, CALLBACK_MIN_RATE_PER_S))
        shared = entry.model_copy(update={"rate_limit_per_s": share})
        options = HttpOptions(
            connect_timeout_s=CALLBACK_CONNECT_SECONDS,
            read_timeout_s=PROFILES[provider].callback_fetch_s,
            retries=0,
            max_retry_wait_s=0,
        )
        return build_client(provider, shared, options=options)

    def poll_queue(self) -> PollQueue | None:
        """The fan-out's queue, None without ``POLL_QUEUE_URL``. Made once per container, as the other clients
        are: a new SQS client at every schedule would cost its creation and a new connection to SQS a minute."""
        if not self.settings.poll_queue_url:
            return None
        if self._poll_queue is None:
            from verdict_relay.dal.poll_queue import PollQueue

            self._poll_queue = PollQueue(
                self.settings.poll_queue_url, self.session.client("sqs", config=SQS_CONFIG)
            )
        return self._poll_queue


class _ClientsOnFirstUse(Mapping[str, "ProviderClient"]):
    """The providers with API credentials, each one's client built when first asked for."""

    def __init__(self, names: list[str], build: Callable[[str], ProviderClient]) -> None:
        self._names = names
        self._build = build

    def __getitem__(self, provider: str) -> ProviderClient:
        if provider not in self._names:
            raise KeyError(provider)
        return self._build(provider)

    def __contains__(self, provider: object) -> bool:
        return provider in self._names  # without building the client (Mapping's default would)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def new_store(settings: Settings, session: boto3.session.Session) -> JobStore:
    archive = PayloadArchive(settings.raw_payload_bucket, lambda: session.client("s3", config=S3_CONFIG))
    return JobStore(
        settings.table_name,
        session.client("dynamodb", config=DYNAMODB_CONFIG),
        archive,
        retention=timedelta(days=settings.retention_days),
        publish_claim=timedelta(seconds=settings.publish_claim_seconds),
    )


def new_publisher(settings: Settings, session: boto3.session.Session) -> VerdictPublisher:
    return VerdictPublisher(settings.topic_arn, lambda: session.client("sns", config=SNS_CONFIG))


def verdict_policy(settings: Settings) -> VerdictPolicy:
    """The policy the settings give: what unmoderated content gets, and whether pass verdicts are published."""
    return VerdictPolicy(
        unmoderated=Suggestion(settings.unmoderated_suggestion), publish_pass=settings.publish_pass_verdicts
    )


def build(
    settings: Settings,
    session: boto3.session.Session | None = None,
    *,
    load_providers: bool = True,
    store: JobStore | None = None,
    publisher: PublisherPort | None = None,
) -> Dependencies:
    """Everything the handlers need. ``load_providers=False``: the providers document is first read when
    something asks for it, not here; the command line's job and republish commands never do (they read and
    publish what is stored), so a document that does not load cannot stop an operator diagnosing it with them.
    ``store`` / ``publisher``: used instead of new ones (``new_store``, ``new_publisher``): the command line's
    note what failed, which the code they share with the functions logs and gets past.
    """
    session = session or boto3.session.Session()
    if store is None:
        store = new_store(settings, session)
    ingest = IngestService(
        store,
        publisher if publisher is not None else new_publisher(settings, session),
        verdict_policy(settings),
        secrets=lambda provider: deps.callback_secrets(provider),
        unknown_grace=timedelta(seconds=settings.unknown_job_grace_seconds),
    )
    deps = Dependencies(
        settings=settings, session=session, store=store, ingest=ingest, certificates=CertificateCache()
    )
    if load_providers:
        deps.providers()  # a malformed providers document fails the cold start, not a request
    return deps


DYNAMODB_CONFIG = Config(
    connect_timeout=1, read_timeout=3, retries={"mode": "standard", "total_max_attempts": 3}
)
"""Store calls that end in bounded time (``STORE_CALL_MAX_S``), which the publish timing counts on: with
botocore's defaults (60 s connects and reads, each attempt), one stalled answer could hold a publish's confirmation
past the function's timeout or past the publish claim, and the owed-publish sweep would send the verdict again. A
stalled or refused attempt is tried again at once, where it could still succeed; the three attempts also absorb
brief throttling. A store call that fails all three is a 503 to a callback, or a job left due for the poller."""


S3_CONFIG = Config(connect_timeout=1, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 3})
"""Archive calls (a large verdict's or payload's object) that end in bounded time, as the store's do: with
botocore's defaults (60 s connects and reads, each attempt) one stalled read of a claimed verdict could outlast
its publish claim, a poller's minute or API Gateway's 29 s."""


SNS_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 1})
"""No botocore retries: it would retry a timed-out publish, which SNS may have taken, and send it again. The
publisher retries what SNS certainly did not take (``dal/publisher.py``). A publish ends well inside the publish
claim (60 s by default; its worst case is ``PUBLISH_MAX_S``): botocore's defaults (60 s reads) could outlast
it and let the owed-publish sweep send the verdict a second time meanwhile."""


SQS_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 1})
"""No botocore retries for the fan-out's sends: an attempt after one whose answer was lost could end in an error,
and the send would pass for one of which nothing went out (its hold taken back while its batches are queued). A
failed send is tried again by the next schedule; the timeouts keep it well inside the poller's minute."""


@cache
def dependencies() -> Dependencies:
    """The functions' dependencies, built once per container. The providers document is read by what needs it
    (a callback, a poll), not here: a document that does not load refuses callbacks and polls (500
    ``configuration_error``, the ``ProvidersReloadFailed`` alarm once loaded before), while the job routes and
    the owed-publish sweep, which need only the table and the topic, go on."""
    return build(Settings.from_env(), load_providers=False)
