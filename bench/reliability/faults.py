"""The fault matrix: every fault the emulator can inject, at every endpoint, and what the client must do.

Each :class:`FaultCase` is injected on the first attempt only and on every attempt, at the token
endpoint (through ``Connection.get_token``), instance metadata (``ImdsClient.get_json``) and ARM
(``ArmClient.get``), in virtual time; :func:`check` lists every rule a run broke: retried or not as
documented, virtual time within the policy's bound (:func:`time_bound`), the right error type with
status and description, nothing else raised.

Example::

    >>> case = case_by_id("arm:503")
    >>> case.retried, case.error.__name__, case.status
    (True, 'ArmError', 503)
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bench.reliability.records import logged
from bench.reliability.seams import VirtualClock, explicit_connection
from mi_notebook import errors
from mi_notebook.retry import RetryPolicy

POLICY = RetryPolicy()  # the default: documented waits with +-20 % jitter, 410 window 70 s
READ_TIMEOUT = 0.1  # seconds of real time a "hang" costs per attempt


@dataclass(frozen=True)
class FaultCase:
    """One injectable fault at one endpoint, and what the client must do about it.

    ``retried``: whether the client's documented table retries it; ``error`` / ``status``: the error
    raised when every attempt gets it; ``described``: whether the service's own words
    (``error_description`` / ARM's message) must travel with that error.
    """

    endpoint: str  # "token" | "instance" | "arm"
    name: str
    inject: dict[str, Any]
    retried: bool
    error: type[errors.ManagedIdentityError]
    status: int | None
    described: bool = False
    known_bug: str | None = None  # a reason: the case is expected to fail until fixed

    @property
    def id(self) -> str:
        """``"<endpoint>:<name>"``, e.g. ``"arm:503"``."""
        return f"{self.endpoint}:{self.name}"

    @property
    def retry_after(self) -> float | None:
        """The Retry-After the client will see, if any (ARM's injected 429 always carries one: 5 s)."""
        if "retry_after" in self.inject:
            return float(self.inject["retry_after"])
        if self.endpoint == "arm" and self.inject["fault"] == 429:
            return 5.0
        return None


def _transport_rows(timeout_error: type[errors.ManagedIdentityError]) -> list[tuple[Any, ...]]:
    """Faults below HTTP, and a 200 that is not the service's JSON: the same outcome at every endpoint
    but the time-out's class (IMDS's own, ``ImdsTimeoutError``, is a kind of ``EndpointTimeoutError``)."""
    return [
        ("hang", {"fault": "hang", "seconds": 1.0}, True, timeout_error, None, False),
        ("drop", {"fault": "drop"}, True, errors.EndpointUnreachableError, None, False),
        ("truncated-short", {"fault": "truncated", "variant": "short"}, False, errors.UnexpectedResponseError, 200, False),
        ("truncated-incomplete", {"fault": "truncated", "variant": "incomplete"}, True,
         errors.UnexpectedResponseError, 200, False),
        ("html-200", {"fault": "html"}, False, errors.UnexpectedResponseError, 200, False),
    ]


def _imds_cases(endpoint: str) -> list[FaultCase]:
    E = errors
    rows: list[tuple[str, dict[str, Any], bool, type[errors.ManagedIdentityError], int | None, bool]] = [
        ("404", {"fault": 404}, True, E.ImdsUpdatingError, 404, True),
        ("410", {"fault": 410}, True, E.ImdsUpdatingError, 410, True),
        ("429", {"fault": 429}, True, E.ThrottledError, 429, True),
        ("429-retry-after", {"fault": 429, "retry_after": 4}, True, E.ThrottledError, 429, True),
        ("500", {"fault": 500}, True, E.ServerError, 500, True),
        ("502", {"fault": 502}, True, E.ServerError, 502, True),
        ("503", {"fault": 503}, True, E.ServerError, 503, True),
        ("503-retry-after", {"fault": 503, "retry_after": 1}, True, E.ServerError, 503, True),
        ("504", {"fault": 504}, True, E.ServerError, 504, True),
        *_transport_rows(E.ImdsTimeoutError),
        ("html-502", {"fault": "html", "status": 502}, False, E.UnexpectedResponseError, 502, False),
    ]
    if endpoint == "token":
        rows += [
            ("bad-expires-missing", {"fault": "bad-expires", "variant": "missing"}, False,
             E.UnexpectedResponseError, 200, False),
            ("bad-expires-string", {"fault": "bad-expires", "variant": "string"}, False,
             E.UnexpectedResponseError, 200, False),
        ]
    return [FaultCase(endpoint, *row) for row in rows]


def _arm_cases() -> list[FaultCase]:
    """ARM's table (mi_notebook/arm.py): 429 and 5xx (JSON or an HTML gateway page) and transport
    failures are retried; 404 / 410 are ARM's "not found" answers, not retried; a 2xx that is not
    ARM's JSON is not retried."""
    E = errors
    rows: list[tuple[Any, ...]] = [
        ("404", {"fault": 404}, False, E.ArmError, 404, True),
        ("410", {"fault": 410}, False, E.ArmError, 410, True),
        ("429", {"fault": 429}, True, E.ArmError, 429, True),
        ("429-retry-after", {"fault": 429, "retry_after": 4}, True, E.ArmError, 429, True),
        ("500", {"fault": 500}, True, E.ArmError, 500, True),
        ("502", {"fault": 502}, True, E.ArmError, 502, True),
        ("503", {"fault": 503}, True, E.ArmError, 503, True),
        ("503-retry-after", {"fault": 503, "retry_after": 1}, True, E.ArmError, 503, True),
        ("504", {"fault": 504}, True, E.ArmError, 504, True),
        *_transport_rows(E.EndpointTimeoutError),
        ("html-502", {"fault": "html", "status": 502}, True, E.UnexpectedResponseError, 502, False),
    ]
    return [FaultCase("arm", *row) for row in rows]


FAULT_CASES: list[FaultCase] = [*_imds_cases("token"), *_imds_cases("instance"), *_arm_cases()]


def case_by_id(case_id: str) -> FaultCase:
    """The case called ``"<endpoint>:<name>"``, e.g. ``"token:429-retry-after"``.

    Example::

        >>> case_by_id("token:429-retry-after").retry_after
        4.0
    """
    return next(c for c in FAULT_CASES if c.id == case_id)


def time_bound(case: FaultCase, attempts: int, policy: RetryPolicy = POLICY) -> float:
    """The most virtual time ``policy`` may spend over ``attempts`` attempts of this fault.

    Example::

        >>> time_bound(case_by_id("token:500"), 3), time_bound(case_by_id("arm:429"), 5)
        (9.6, 20.0)
    """
    if not case.retried:
        return 0.0
    if case.name == "410":
        return policy.gone_window + policy.max_backoff  # waits run until the 70 s window closes
    if case.retry_after is not None:
        return min(case.retry_after, policy.max_retry_after) * (attempts - 1)
    return sum(min(policy.min_backoff + (2**k - 1) * policy.delta_backoff * (1 + policy.jitter), policy.max_backoff)
               for k in range(1, attempts))


@dataclass
class CaseResult:
    """What one run of a case produced, and every way it broke the rules (``problems``)."""

    case: FaultCase
    every: bool
    value: Any = None
    error: BaseException | None = None
    attempts: int = 0
    statuses: list[int | None] = field(default_factory=list)
    total: float = 0.0
    bound: float = 0.0
    requests: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No rule broken."""
        return not self.problems

    @property
    def label(self) -> str:
        """The case and which attempts were faulted, for messages."""
        return f"{self.case.id} ({'every attempt' if self.every else 'first attempt'})"


class FaultBench:
    """An emulator (IMDS + ARM over TLS, throttling off) and clients in virtual time, for the matrix.

    Example::

        >>> with FaultBench() as bench:
        ...     result = bench.run(case_by_id("token:503"), every=False)
        >>> result.passed, result.statuses
        (True, [503, 200])
    """

    def __init__(self) -> None:
        from mi_notebook.emulator import Emulator

        self.emu = Emulator(throttle=False, seed="reliability")

    def __enter__(self) -> FaultBench:
        self.emu.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.emu.stop()

    def run(self, case: FaultCase, *, every: bool) -> CaseResult:
        """Inject ``case`` (once, or until cleared), make the call, check the outcome.

        Example::

            >>> with FaultBench() as bench:
            ...     result = bench.run(case_by_id("arm:404"), every=True)
            >>> result.passed, type(result.error).__name__, result.statuses
            (True, 'ArmError', [404])
        """
        from mi_notebook.cache import TokenCache

        emu = self.emu
        clock = VirtualClock(time.time(), seed=case.id)
        emu.clear_faults()
        conn, client = self.connection(clock)
        arm = None
        if case.endpoint == "arm":
            from mi_notebook.arm_client import ArmClient

            arm = ArmClient(emu.arm_url, verify=emu.ca_bundle, connection=conn, retry=POLICY, clock=clock,
                            timeout=(1.0, READ_TIMEOUT))
            arm.token()  # the bearer token first: the fault is for ARM itself
        emu.requests.clear()
        options = dict(case.inject)
        emu.inject(options.pop("fault"), case.endpoint, count=None if every else 1, **options)
        result = CaseResult(case, every)
        try:
            if case.endpoint == "token":
                result.value = conn.get_token("arm", cache=TokenCache())
                timeline = result.value.timeline
            elif case.endpoint == "instance":
                result.value, timeline = client.get_json("/metadata/instance", [("api-version", "2021-02-01")])
            else:
                assert arm is not None
                result.value = arm.get(emu.vm.resource_group_id)
                timeline = arm.last_timeline
        except errors.ManagedIdentityError as exc:  # anything else propagates: an unhandled exception
            result.error = exc
            timeline = exc.timeline
        finally:
            emu.clear_faults()
            if arm is not None:
                arm.close()
            client.close()
        if timeline is not None:
            result.attempts = len(timeline)
            result.statuses = [a.status for a in timeline]
            result.total = timeline.total
        result.bound = time_bound(case, max(result.attempts, 1))
        service = "arm" if case.endpoint == "arm" else "imds"
        endpoint = None if case.endpoint == "arm" else case.endpoint
        result.requests = len(logged(emu, result.attempts, endpoint, service=service))
        result.problems = check(result, clock)
        return result

    def connection(self, clock: VirtualClock) -> tuple[Any, Any]:
        """A connection to the bench's emulator and its ``ImdsClient`` (the policy's retries, on ``clock``).

        Example::

            >>> from mi_notebook.cache import TokenCache
            >>> with FaultBench() as bench:
            ...     conn, client = bench.connection(VirtualClock(seed=1))
            ...     conn.get_token("vault", cache=TokenCache()).resource
            ...     client.close()
            'https://vault.azure.net'
        """
        from mi_notebook.sources.imds import ImdsClient

        client = ImdsClient(url=self.emu.imds_url, retry=POLICY, clock=clock, timeout=(1.0, READ_TIMEOUT))
        conn = explicit_connection(self.emu.imds_url, client, "reliability bench")
        return conn, client


def check(result: CaseResult, clock: VirtualClock) -> list[str]:
    """Every rule of the matrix this result breaks (empty: the case passed).

    Example::

        >>> check(CaseResult(case_by_id("arm:404"), every=True), VirtualClock())  # no error, no attempt
        ['expected ArmError, got a value after []']
    """
    case, problems = result.case, []
    if result.requests != result.attempts:
        problems.append(f"{result.requests} requests reached the emulator for {result.attempts} attempts")
    if abs(sum(clock.slept) - (clock() - clock.start)) > 1e-6:
        problems.append("time passed outside the injected sleep")
    if result.total > result.bound + 1e-9:
        problems.append(f"took {result.total:.1f} s of virtual time, bound {result.bound:.1f} s")
    if not result.every and case.retried:
        if result.error is not None:
            problems.append(f"expected recovery after one retry, got {type(result.error).__name__}: {result.error}")
        elif result.attempts != 2:
            problems.append(f"expected 2 attempts, got {result.statuses}")
        return problems
    err = result.error
    if err is None:
        return [*problems, f"expected {case.error.__name__}, got a value after {result.statuses}"]
    if type(err) is not case.error:
        problems.append(f"expected {case.error.__name__}, got {type(err).__name__}: {err}")
    if getattr(err, "status", None) != case.status:
        problems.append(f"expected status {case.status}, got {getattr(err, 'status', None)}")
    if err.timeline is None or not err.endpoint or not err.request_id:
        problems.append("the error lacks its timeline, endpoint or request id")
    expected_attempts = 1 if not case.retried else POLICY.max_attempts
    if case.name == "410" and case.retried and result.every:
        if result.attempts < POLICY.max_attempts or result.total < POLICY.gone_window:
            problems.append(f"410 given up after {result.attempts} attempts / {result.total:.1f} s (< 70 s)")
    elif result.attempts != expected_attempts:
        problems.append(f"expected {expected_attempts} attempts, got {result.attempts}: {result.statuses}")
    if not case.retried and clock.slept:
        problems.append(f"slept {clock.slept} before a fault that is not retried")
    if case.retry_after is not None and result.attempts > 1 and set(clock.slept) != {case.retry_after}:
        problems.append(f"Retry-After {case.retry_after} not honoured: slept {clock.slept}")
    text = str(err)
    if case.described and not (err.error_description or err.error):
        # IMDS token errors carry error_description; instance metadata says it all in "error"
        problems.append("what the service said (error / error_description) is not on the error")
    if err.message not in text or (err.hint and "What to do" not in text):
        problems.append("str(err) lacks the message or what to do")
    if case.status is not None and (f"HTTP {case.status}" not in text or "no response" in text.lower()):
        problems.append(f"str(err) does not say HTTP {case.status} (or claims no response)")
    return problems


def run_fault_matrix(cases: Iterable[FaultCase] = FAULT_CASES) -> list[CaseResult]:
    """Every case, first attempt only and every attempt.

    Example::

        >>> [(r.label, r.passed) for r in run_fault_matrix([case_by_id("instance:html-200")])]
        [('instance:html-200 (first attempt)', True), ('instance:html-200 (every attempt)', True)]
    """
    with FaultBench() as bench:
        return [bench.run(case, every=every) for case in cases for every in (False, True)]

