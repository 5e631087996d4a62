"""Prometheus metrics of the request path, shared by all gunicorn workers.

`dk-adapter serve` sets PROMETHEUS_MULTIPROC_DIR before anything imports prometheus_client,
so every worker writes its samples to files there and the admin listener (in the scheduler
process) adds them up. Labels carry no BSN and no message content.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "dk_requests",
    "Requests answered, by service, outcome and the caller's OIN",
    ["service", "outcome", "oin"],
)
FAULTS = Counter("dk_faults", "Refusals, by SOAP fault or ebMS error code", ["service", "code"])
ACCEPTED = Counter(
    "dk_messages_accepted",
    "Business messages accepted: letters Verwerkt, zaak deliveries, subscription answers",
    ["service"],
)
INTAKE_SECONDS = Histogram(
    "dk_intake_seconds",
    "Time from receiving a request to the answer being ready, by service",
    ["service"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
SIGN_SECONDS = Histogram(
    "dk_receipt_sign_seconds",
    "Time to sign one Afleverbevestiging",
    buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05),
)


def record_request(
    service: str, oin: str, outcome: str, seconds: float, code: str | None = None
) -> None:
    """One answered request; `outcome` is accepted or refused (with the code that refused it)."""
    REQUESTS.labels(service=service, outcome=outcome, oin=oin).inc()
    INTAKE_SECONDS.labels(service=service).observe(seconds)
    if code is not None:
        FAULTS.labels(service=service, code=code).inc()
