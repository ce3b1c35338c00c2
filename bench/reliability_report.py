"""Reliability figures for mi-notebook: the fault matrix, bad-input fuzzing, token leaks, load.

Runs the same scenarios as the reliability tests (``tests/test_reliability_*.py``,
``tests/test_fuzz_*.py``, ``tests/test_secrets*.py``, ``tests/test_load*.py`` import them from here)
outside pytest, against the embedded emulator on loopback, in virtual time, and prints the figures
as a Markdown table (the content of ``docs/reliability.md``)::

    python bench/reliability_report.py                 # everything, ~20 s
    python bench/reliability_report.py --update        # ... and rewrite the figures in docs/reliability.md and README.md
    python bench/reliability_report.py --examples 50   # fewer fuzz examples per property

Sections:

- the fault matrix: every fault the emulator can inject, on the first attempt only and on every
  attempt, at the token endpoint (through ``Connection.get_token``), instance metadata
  (``ImdsClient.get_json``) and ARM (``ArmClient.get``): retried or not as documented, virtual time
  within the policy's bound, the right error type with status and description, nothing else raised;
- bad input: hypothesis properties over the public entry points (only ``ValueError`` /
  ``ManagedIdentityError``), and garbage requests to the emulator's ARM side;
- secrets: every repr / str / HTML / log record / error / CLI output / chart text of a full run,
  scanned for each issued token and every 40-character piece of it;
- load: 64 threads x 1,000 ``get_token`` calls with intermittent 429 / 500, and the emulator under
  200 concurrent connections with its throttling on.

Example::

    >>> case = case_by_id("arm:503")
    >>> case.retried, case.error.__name__, case.status
    (True, 'ArmError', 503)
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import logging
import os
import random
import re
import socket
import ssl
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from mi_notebook import errors  # noqa: E402
from mi_notebook.retry import RetryPolicy, VirtualClock  # noqa: E402

POLICY = RetryPolicy()  # the default: documented waits with +-20 % jitter, 410 window 70 s
READ_TIMEOUT = 0.1  # seconds of real time a "hang" costs per attempt
JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
LEAK_WINDOW = 40


# =====================================================================================================
# The fault matrix
# =====================================================================================================
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
        return f"{self.endpoint}:{self.name}"

    @property
    def retry_after(self) -> float | None:
        """The Retry-After the client will see, if any (ARM's injected 429 always carries one: 5 s)."""
        if "retry_after" in self.inject:
            return float(self.inject["retry_after"])
        if self.endpoint == "arm" and self.inject["fault"] == 429:
            return 5.0
        return None


#: faults below HTTP, and a 200 that is not the service's JSON: the same outcome at every endpoint
_TRANSPORT_ROWS: list[tuple[Any, ...]] = [
    ("hang", {"fault": "hang", "seconds": 1.0}, True, errors.ImdsTimeoutError, None, False),
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
        *_TRANSPORT_ROWS,
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
        *_TRANSPORT_ROWS,
        ("html-502", {"fault": "html", "status": 502}, True, E.UnexpectedResponseError, 502, False),
    ]
    return [FaultCase("arm", *row) for row in rows]


FAULT_CASES: list[FaultCase] = [*_imds_cases("token"), *_imds_cases("instance"), *_arm_cases()]


def case_by_id(case_id: str) -> FaultCase:
    """The case called ``"<endpoint>:<name>"``, e.g. ``"token:429-retry-after"``."""
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
        return not self.problems

    @property
    def label(self) -> str:
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
        """Inject ``case`` (once, or until cleared), make the call, check the outcome."""
        from mi_notebook.tokens import TokenCache

        emu = self.emu
        clock = VirtualClock()
        rng = random.Random(case.id)
        emu.clear_faults()
        conn, client = self._connection(clock, rng)
        arm = None
        if case.endpoint == "arm":
            from mi_notebook.arm import ArmClient

            arm = ArmClient(emu.arm_url, verify=emu.ca_bundle, connection=conn, retry=POLICY, sleep=clock.sleep,
                            clock=clock, rng=rng, timeout=(1.0, READ_TIMEOUT))
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
        result.requests = len(_logged(emu, result.attempts, service, endpoint))
        result.problems = check(result, clock)
        return result

    def _connection(self, clock: VirtualClock, rng: random.Random) -> tuple[Any, Any]:
        from mi_notebook.connect import Connection

        from mi_notebook.imds import ImdsClient

        client = ImdsClient(url=self.emu.imds_url, retry=POLICY, sleep=clock.sleep, clock=clock,
                            timeout=(1.0, READ_TIMEOUT), rng=rng)
        conn = Connection(self.emu.imds_url, "explicit", client, reason="reliability bench")
        conn.arm_url = self.emu.arm_url  # type: ignore[attr-defined]
        return conn, client


def _logged(emu: Any, n: int, service: str, endpoint: str | None, timeout: float = 2.0) -> list[Any]:
    """The emulator's records once ``n`` are there (it logs just after answering: poll briefly)."""
    def records() -> list[Any]:
        return emu.requests.filter(service=service, endpoint=endpoint)

    deadline = time.monotonic() + timeout
    found = records()
    while len(found) < n and time.monotonic() < deadline:
        time.sleep(0.005)
        found = records()
    time.sleep(0.01)  # a late extra request would show up now
    return records()


def check(result: CaseResult, clock: VirtualClock) -> list[str]:
    """Every rule of the matrix this result breaks (empty: the case passed)."""
    case, problems = result.case, []
    if result.requests != result.attempts:
        problems.append(f"{result.requests} requests reached the emulator for {result.attempts} attempts")
    if abs(sum(clock.slept) - clock()) > 1e-9:
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
    """Every case, first attempt only and every attempt."""
    with FaultBench() as bench:
        return [bench.run(case, every=every) for case in cases for every in (False, True)]


# =====================================================================================================
# Bad input: hypothesis strategies and the properties the fuzz tests check
# =====================================================================================================
def strategies() -> dict[str, Any]:
    """Hypothesis strategies for the public entry points' inputs (imported lazily: a test dependency)."""
    from hypothesis import strategies as st

    guid = st.uuids().map(str)
    ascii_junk = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
    garbage = st.one_of(st.text(max_size=80), ascii_junk, st.binary(max_size=40), st.integers(), st.none(),
                        st.floats(allow_nan=True), st.booleans(), st.lists(st.text(max_size=5), max_size=3),
                        st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2))
    resources = st.one_of(
        garbage,
        st.sampled_from(["arm", "vault", "storage", "graph", "https://management.azure.com/", "api://x",
                         "https://vault.azure.net/.default", "", " ", "https://", "http://x", "a/.default",
                         "https://management.azure.com/.default/.default", "ARM", "https://x y", "\x00"]),
        st.builds(lambda s: f"https://{s}.example.com/", st.text(max_size=12)),
        st.builds(lambda s: f"{s}/.default", ascii_junk),
    )
    rid = "/subscriptions/{}/resourcegroups/{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{}"
    identities = st.one_of(
        garbage,
        st.sampled_from(["system", "SYSTEM", "system-assigned", "user", "client_id=", "object_id=x",
                         "resource_id=/subscriptions/x", "=", "client_id=client_id=" + "1" * 36]),
        guid, guid.map(lambda g: "client_id=" + g), guid.map(lambda g: "object_id=" + g),
        guid.map(lambda g: "mi_res_id=" + g), guid.map(lambda g: g.upper() + " "),
        st.builds(lambda g, rg, n: rid.format(g, rg, n), guid, ascii_junk, ascii_junk),
    )
    scopes = st.one_of(resources, st.lists(resources, max_size=3))
    segment = st.one_of(st.sampled_from(["subscriptions", "resourceGroups", "providers", "..", ".", "%2e%2e",
                                         "Microsoft.Compute", "virtualMachines", "", "?", "#", "%00", "//"]),
                        ascii_junk.map(lambda s: s.replace("/", "")))
    arm_paths = st.one_of(
        garbage,
        st.lists(segment, max_size=8).map(lambda parts: "/" + "/".join(parts)),
        st.sampled_from(["", "/", "subscriptions", "//evil.example.com/x", "https://evil.example.com/subscriptions",
                         "http://127.0.0.1:1/subscriptions", "/subscriptions?api-version=1", "/subscriptions#x",
                         "\\\\server\\share", "/subscriptions/\r\nHost: evil", "file:///etc/passwd",
                         "/subscriptions/" + "a" * 3000]),
    )
    cli_words = st.sampled_from(["--json", "--show-token", "--client-id", "--object-id", "--resource-id",
                                 "--resource", "arm", "vault", "system", "--", "-x", "--nope", "=", "-",
                                 "11111111-2222-3333-4444-555555555555", "eyJ.eyJ.x", "a.b.c", "--version"])
    cli_args = st.tuples(st.sampled_from(["token", "decode", "doctor", "", "nope", "--version", "-h"]),
                         st.lists(st.one_of(cli_words, ascii_junk.filter(lambda s: "\x00" not in s)),
                                  max_size=5))
    return {"resource": resources, "identity": identities, "scope": scopes, "arm_path": arm_paths,
            "cli": cli_args, "garbage": garbage}


ALLOWED_ERRORS = (ValueError, errors.ManagedIdentityError)


def only_clear_errors(call: Callable[[], Any]) -> BaseException | None:
    """Run ``call``; return the ValueError / ManagedIdentityError it raised (with a message), or None.

    Any other exception propagates: that is the bug a fuzz test is looking for.

    Example::

        >>> type(only_clear_errors(lambda: int("x"))).__name__
        'ValueError'
        >>> only_clear_errors(lambda: [][1])
        Traceback (most recent call last):
        IndexError: list index out of range
    """
    try:
        call()
    except ALLOWED_ERRORS as exc:
        if not str(exc).strip():
            raise AssertionError(f"{type(exc).__name__} without a message") from exc
        return exc
    return None


class InputBench:
    """A running emulator (IMDS + ARM, no throttling) and connected clients for the bad-input properties.

    No property may wait for real: requests that the client accepts go to the emulator and come back
    at once (a 400 for an unknown resource or identity is not retried).
    """

    def __init__(self) -> None:
        from mi_notebook.emulator import Emulator

        self.emu = Emulator(throttle=False, seed="fuzz")
        self.clock = VirtualClock()

    def __enter__(self) -> InputBench:
        from mi_notebook.arm import ArmClient
        from mi_notebook.connect import Connection
        from mi_notebook.credential import credential

        from mi_notebook.imds import ImdsClient
        from mi_notebook.tokens import TokenCache

        self.emu.start()
        no_retry = RetryPolicy.no_retry()
        self.client = ImdsClient(url=self.emu.imds_url, retry=no_retry, sleep=self.clock.sleep, clock=self.clock,
                                 timeout=(1.0, 2.0))
        self.conn = Connection(self.emu.imds_url, "explicit", self.client, reason="fuzz bench")
        self.cache = TokenCache()
        self.credential = credential(connection=self.conn)
        self.arm = ArmClient(self.emu.arm_url, verify=self.emu.ca_bundle, connection=self.conn, retry=no_retry,
                             sleep=self.clock.sleep, clock=self.clock, timeout=(1.0, 2.0))
        return self

    def __exit__(self, *exc: object) -> None:
        self.arm.close()
        self.client.close()
        self.emu.stop()

    # the properties: each returns the clear error it raised, or None
    def get_token(self, resource: Any, identity: Any) -> BaseException | None:
        return only_clear_errors(lambda: self.conn.get_token(resource, identity=identity, cache=self.cache))

    def credential_get_token(self, scope: Any) -> BaseException | None:
        scopes = scope if isinstance(scope, list) else [scope]
        return only_clear_errors(lambda: self.credential.get_token(*scopes))

    def request_token(self, resource: Any, identity: Any) -> BaseException | None:
        return only_clear_errors(lambda: self.client.request_token(resource, identity))

    def arm_get(self, path: Any) -> BaseException | None:
        return only_clear_errors(lambda: self.arm.get(path))

    def arm_list(self, path: Any) -> BaseException | None:
        return only_clear_errors(lambda: self.arm.list(path, page_limit=2))


def run_cli(argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    """``mi_notebook.cli.main(argv)`` in process: ``(exit code, stdout, stderr)``; argparse's exit is a code.

    Example::

        >>> run_cli(["--nope"])[0]
        2
    """
    from mi_notebook.cli import main

    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    finally:
        sys.stdin = old_stdin
    return int(code), out.getvalue(), err.getvalue()


def cli_property(imds_url: str, command: str, words: list[str]) -> tuple[int, str, str]:
    """Garbage arguments for a subcommand, always pointed at ``imds_url`` (never a real probe)."""
    argv = [w for w in [command, *words] if w != ""]
    if argv and argv[0] in ("token", "doctor"):
        argv += ["--imds-url", imds_url]
    code, out, err = run_cli(argv, stdin="not a token")
    if code not in (0, 1, 2):
        raise AssertionError(f"exit code {code} for {argv!r}")
    if "Traceback" in out + err:
        raise AssertionError(f"a traceback for {argv!r}:\n{err}")
    return code, out, err


def run_property(strategy: Any, check: Callable[[Any], Any], max_examples: int) -> int:
    """Run a hypothesis property outside pytest; returns how many inputs were tried."""
    from hypothesis import HealthCheck, given, settings

    tried = [0]

    @settings(max_examples=max_examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def prop(value: Any) -> None:
        tried[0] += 1
        check(value)

    prop()
    return tried[0]


# --- the emulator's ARM side under garbage -----------------------------------------------------------
ARM_ALLOWED = {200, 400, 401, 403, 404, 405, 413, 414, 429, 431, 505}


def arm_exchange(emu: Any, raw: bytes, method: str = "GET",
                 timeout: float = 5.0) -> tuple[int, dict[str, str], bytes] | None:
    """Send raw bytes over TLS to the emulator's ARM port; parse one answer (None: closed without one)."""
    host, port = emu.arm_url.split("//", 1)[1].rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=emu.ca_bundle)
    with socket.create_connection((host, int(port)), timeout=timeout) as raw_sock, \
            ctx.wrap_socket(raw_sock, server_hostname=host) as sock:
        sock.sendall(raw)
        resp = http.client.HTTPResponse(sock, method=method)
        try:
            resp.begin()
        except (http.client.RemoteDisconnected, ConnectionResetError, ssl.SSLError):
            return None
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


def check_arm_answer(answer: tuple[int, dict[str, str], bytes] | None, method: str) -> None:
    """A documented ARM answer: an allowed status, ARM's JSON error envelope on errors."""
    if answer is None:
        raise AssertionError("no answer to a complete request")
    status, headers, body = answer
    if status not in ARM_ALLOWED:
        raise AssertionError(f"status {status}: {body[:200]!r}")
    if method == "HEAD" or status == 200:
        return
    payload = json.loads(body)
    if not (isinstance(payload, dict) and isinstance(payload.get("error"), dict) and payload["error"].get("code")):
        raise AssertionError(f"no ARM error envelope: {body[:200]!r}")


def arm_still_serving(emu: Any) -> bool:
    import requests

    token = requests.get(emu.token_url, headers={"Metadata": "true"}, timeout=5,
                         params={"api-version": "2018-02-01", "resource": "https://management.azure.com/"}
                         ).json()["access_token"]
    r = requests.get(emu.arm_url + emu.vm.resource_group_id, params={"api-version": "2021-04-01"},
                     headers={"Authorization": "Bearer " + token}, verify=emu.ca_bundle, timeout=5)
    return r.status_code == 200 and r.json()["name"] == emu.vm.resource_group


def arm_request_strategy() -> Any:
    from hypothesis import strategies as st

    chars = st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="?#")
    methods = st.sampled_from(["GET", "GET", "GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "FOO"])
    segs = st.lists(st.one_of(st.sampled_from(["subscriptions", "resourceGroups", "resourcegroups", "providers",
                                               "Microsoft.Compute", "virtualMachines", "resources", "..", "%2F",
                                               "{s}", "{rg}", "Microsoft.ManagedIdentity",
                                               "userAssignedIdentities"]),
                              st.text(chars, max_size=12).map(lambda s: s.replace("/", ""))), max_size=8)
    queries = st.lists(st.one_of(st.sampled_from(["api-version=2021-04-01", "api-version=2024-07-01",
                                                  "api-version=", "api-version=x", "$skiptoken=%%%",
                                                  "$skiptoken=MTAw", "$top=-1", "api-version=2021-04-01"]),
                                 st.text(chars, max_size=20)), max_size=4).map("&".join)
    auth = st.sampled_from(["valid", "none", "garbage", "bearer-empty", "basic", "expired-shape"])
    return st.tuples(methods, segs, queries, auth, st.binary(max_size=32))


def arm_fuzz_case(emu: Any, token: str, value: tuple[Any, ...]) -> None:
    """One garbage ARM request: answered as ARM documents, never a 500 ARM would not send."""
    method, segs, query, auth, body = value
    path = "/" + "/".join(s.replace("{s}", emu.vm.subscription_id).replace("{rg}", emu.vm.resource_group)
                          for s in segs)
    target = path + ("?" + query if query else "")
    headers = {"valid": f"Bearer {token}", "none": None, "garbage": "Bearer not.a.jwt",
               "bearer-empty": "Bearer ", "basic": "Basic dXNlcjpwYXNz",
               "expired-shape": "Bearer eyJhbGciOiJub25lIn0.eyJleHAiOjF9."}[auth]
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    if headers is not None:
        lines.append(f"Authorization: {headers}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    check_arm_answer(arm_exchange(emu, raw, method), method)


# =====================================================================================================
# Secrets: collect every surface a token could leak through, scan it
# =====================================================================================================
class Capture(logging.Handler):
    """Every log record at every level, formatted with its arguments and exception text."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.texts: list[str] = []
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        extra = " ".join(repr(a) for a in (record.args if isinstance(record.args, tuple) else [record.args]))
        with self._lock2:
            self.texts.append(text + " " + extra)


@contextlib.contextmanager
def capture_logs() -> Iterator[Capture]:
    """A DEBUG handler on the root logger and on urllib3 / requests (which may not propagate)."""
    handler = Capture()
    loggers = [logging.getLogger(), logging.getLogger("urllib3"), logging.getLogger("requests"),
               logging.getLogger("mi_notebook")]
    saved = [(lg, lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for lg, level, propagate in saved:
            lg.removeHandler(handler)
            lg.setLevel(level)
            lg.propagate = propagate


@dataclass
class SecretsReport:
    """What a full run showed: the texts scanned (by surface) and the raw tokens issued meanwhile."""

    texts: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    tokens: set[str] = field(default_factory=set)

    def add(self, surface: str, *values: Any) -> None:
        for value in values:
            self.texts[surface].append(value if isinstance(value, str) else str(value))

    @property
    def scanned_chars(self) -> int:
        return sum(len(t) for texts in self.texts.values() for t in texts)

    def leaks(self, window: int = LEAK_WINDOW) -> list[tuple[str, str]]:
        """``(surface, excerpt)`` for every text holding a whole token or any ``window``-char piece of one."""
        return find_leaks(self.texts, self.tokens, window)


def find_leaks(texts: dict[str, list[str]], tokens: Iterable[str], window: int = LEAK_WINDOW) -> list[tuple[str, str]]:
    """Scan ``texts`` (surface -> texts) for any ``window``-character substring of any token.

    Example::

        >>> token = "A" + "s" * 45 + "B"
        >>> find_leaks({"log": ["x" + "s" * 40 + "y", "ok"]}, [token]) == [("log", "x" + "s" * 40 + "y")]
        True
        >>> find_leaks({"log": ["x" + "s" * 39 + "y"]}, [token])  # 39 characters: not a piece of 40
        []
    """
    pieces: set[str] = set()
    for token in tokens:
        pieces.update(token[i:i + window] for i in range(max(1, len(token) - window + 1)))
    found = []
    for surface, items in texts.items():
        for text in items:
            for i in range(len(text) - window + 1):
                if text[i:i + window] in pieces:
                    found.append((surface, text[max(0, i - 20): i + window + 20]))
                    break
    return found


def collect_secret_surfaces() -> SecretsReport:
    """Run every scenario that touches a token and keep everything a user or a log could see.

    Scenarios: success, each error class, the cache, the credential, ARM (success, lists, a 403, a
    500 on every attempt), claims, frames, charts' text, the widgets' state, the CLI (text and
    ``--json``, without ``--show-token``). The raw tokens are read on the emulator's side (every
    token its issuer hands out) and from ``.reveal()``, only to know what to search for.
    """
    import importlib

    from mi_notebook.arm import ArmClient
    from mi_notebook.credential import credential

    from mi_notebook.claims import decode
    from mi_notebook.emulator import Emulator
    from mi_notebook.identity import Identity
    from mi_notebook.tokens import default_cache

    connect_module = importlib.import_module("mi_notebook.connect")
    saved_env = {name: os.environ.get(name) for name in ("MI_NOTEBOOK_ARM_URL", "MI_NOTEBOOK_ARM_CA_BUNDLE")}
    report = SecretsReport()
    clock = VirtualClock()
    with capture_logs() as logs, Emulator(throttle=False, seed="secrets") as emu:
        issue = emu.issuer.get

        def recording_get(*args: Any, **kw: Any) -> Any:  # every token the emulator hands out
            token = issue(*args, **kw)
            report.tokens.add(token.access_token)
            return token

        emu.issuer.get = recording_get

        def issued() -> None:
            report.tokens.update(t.access_token for t in emu.issuer.cached())

        # ARM for anything that locates it from the environment (widgets, mi.arm()): the emulator's
        os.environ["MI_NOTEBOOK_ARM_URL"], os.environ["MI_NOTEBOOK_ARM_CA_BUNDLE"] = emu.arm_url, emu.ca_bundle
        conn = connect_module.connect(emu.imds_url)
        conn.client.sleep, conn.client.clock = clock.sleep, clock
        conn.arm_url = emu.arm_url  # type: ignore[attr-defined]
        default_cache().clear()
        users = [Identity.user(client_id=i.client_id) for i in emu.vm.user_identities]
        tokens = []
        try:
            # success, for several identities and resources, then from the cache
            for ident in [Identity.system(), *users]:
                for resource in ("arm", "vault", "https://storage.azure.com/"):
                    tok = conn.get_token(resource, identity=ident)
                    tokens.append(tok)
                    tokens.append(conn.get_token(resource, identity=ident))
            for tok in tokens:
                report.add("token", repr(tok), str(tok), f"{tok}", f"{tok!r}", tok._repr_html_(),
                           repr(tok.to_dict()), repr(tok.timeline), tok.timeline.summary() if tok.timeline else "")
                report.tokens.add(tok.reveal())
            cache = default_cache()
            report.add("cache", repr(cache), repr(cache.entries()), repr(cache.tokens()), repr(cache.stats))
            # each error class
            cases: list[tuple[str, dict[str, Any] | None, Callable[[], Any]]] = [
                ("404", {"fault": 404, "count": None}, lambda: conn.get_token("graph", force_refresh=True)),
                ("429", {"fault": 429, "count": None, "retry_after": 1}, lambda: conn.get_token("graph", force_refresh=True)),
                ("500", {"fault": 500, "count": None}, lambda: conn.get_token("graph", force_refresh=True)),
                ("hang", {"fault": "hang", "count": None, "seconds": 0.5}, lambda: conn.client.request_token("arm")),
                ("drop", {"fault": "drop", "count": None}, lambda: conn.client.request_token("arm")),
                ("html", {"fault": "html"}, lambda: conn.client.request_token("arm")),
                ("truncated", {"fault": "truncated"}, lambda: conn.client.request_token("arm")),
                ("bad-expires", {"fault": "bad-expires", "variant": "string"}, lambda: conn.client.request_token("arm")),
                ("identity", None, lambda: conn.get_token("arm", identity="11111111-2222-3333-4444-555555555555")),
                ("resource", None, lambda: conn.get_token("api://nobody-knows-this")),
                ("bad-input", None, lambda: conn.get_token("arm", identity="nope")),
                ("decode", None, lambda: decode("eyJhbGciOiJSUzI1NiJ9.!!!." + tokens[0].reveal()[-30:])),
            ]
            old_timeout = conn.client.timeout
            conn.client.timeout = (1.0, 0.1)
            for name, fault, call in cases:
                emu.clear_faults()
                if fault:
                    spec = dict(fault)
                    emu.inject(spec.pop("fault"), "token", **spec)
                try:
                    call()
                except (ValueError, errors.ManagedIdentityError) as exc:
                    report.add(f"error:{name}", str(exc), repr(exc), repr(getattr(exc, "to_dict", dict)()),
                               repr(vars(exc)), repr(exc.args))
            emu.clear_faults()
            conn.client.timeout = old_timeout
            # the credential, as the Azure SDK uses it
            cred = credential(connection=conn)
            sdk = cred.get_token("https://management.azure.com/.default")
            info = cred.get_token_info("https://vault.azure.net/.default")
            report.add("credential", repr(cred), repr(sdk), repr(info), str(info))
            # ARM: success, lists, a 403, the 401 refresh, a 500 every time
            for ident in [None, users[-1]]:
                arm = ArmClient(emu.arm_url, verify=emu.ca_bundle, connection=conn, identity=ident,
                                sleep=clock.sleep, clock=clock, retry=RetryPolicy(jitter=0))
                try:
                    groups = arm.resource_groups(emu.vm.subscription_id)
                    report.add("arm", repr(groups), groups._repr_html_(), groups.to_frame().to_string(),
                               json.dumps(arm.get(emu.vm.resource_group_id)), repr(arm),
                               repr(arm.last_timeline))
                except errors.ManagedIdentityError as exc:
                    report.add("arm-error", str(exc), repr(exc), repr(exc.to_dict()), repr(vars(exc)))
                emu.inject(500, "arm", count=None)
                try:
                    arm.get(emu.vm.resource_group_id)
                except errors.ManagedIdentityError as exc:
                    report.add("arm-error", str(exc), repr(exc), repr(exc.to_dict()), repr(vars(exc)))
                emu.clear_faults()
                arm.close()
            issued()
            # claims, frames, charts' text
            for tok in tokens[:4]:
                claims = decode(tok)
                report.add("claims", repr(claims), claims._repr_html_(), claims.to_frame().to_string(),
                           repr(claims.payload), repr(claims.header))
            _collect_views(report, tokens, cache)
            _collect_widgets(report, emu)  # (through the current connection: before the CLI replaces it)
            issued()
            # the CLI, without --show-token (each run connects anew: keep it last)
            for argv in (["token", "arm"], ["token", "vault", "--json"], ["doctor"],
                         ["token", "arm", "--client-id", users[0].client_id or ""],
                         ["decode", tokens[0].reveal()], ["decode", "--json", tokens[1].reveal()]):
                if argv[0] in ("token", "doctor"):
                    argv = [*argv, "--imds-url", emu.imds_url]
                code, out, err = run_cli(argv)
                report.add("cli", out, err)
            issued()
        finally:
            connect_module.disconnect()
            default_cache().clear()
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        report.add("log", *logs.texts)
        issued()
    return report


def _collect_widgets(report: SecretsReport, emu: Any) -> None:
    """TokenExplorer (a token, then an error) and ArmExplorer, run synchronously; every widget's state."""
    try:
        from ipywidgets.widgets import widget as widget_module

        from mi_notebook.widgets import ArmExplorer, SyncExecutor, TokenExplorer
    except ImportError:  # pragma: no cover - widgets not installed
        return
    before = set(widget_module._instances)
    for resource in ("arm", "vault"):
        TokenExplorer(resource, executor=SyncExecutor(), list_identities=False).on_get()
    emu.inject(500, "token", count=None)
    try:
        TokenExplorer("sql", executor=SyncExecutor(), list_identities=False).on_get()
    finally:
        emu.clear_faults()
    ArmExplorer(executor=SyncExecutor(), list_identities=False).on_list()
    for key, widget in list(widget_module._instances.items()):
        if key in before:
            continue
        state = {k: v for k, v in widget.get_state().items() if not isinstance(v, (bytes, bytearray, memoryview))}
        report.add("widgets", json.dumps(state, default=repr))


def _collect_views(report: SecretsReport, tokens: list[Any], cache: Any) -> None:
    """frames, charts' text and widgets' HTML (each only if the module is importable)."""
    import matplotlib.pyplot as plt

    with contextlib.suppress(ImportError):
        from mi_notebook import frames

        for name in dir(frames):
            fn = getattr(frames, name)
            if name.endswith("_frame") and callable(fn):
                for arg in (tokens, tokens[0].timeline, cache):
                    with contextlib.suppress(Exception):
                        report.add("frames", fn(arg).to_string())
    with contextlib.suppress(ImportError):
        from mi_notebook import charts

        figures = []
        for fn_name, arg in (("plot_retry_timeline", tokens[0].timeline), ("plot_token_lifetimes", tokens)):
            fn = getattr(charts, fn_name, None)
            if fn is not None:
                result = fn(arg)
                figures.append(getattr(result, "figure", result))
        for fig in figures:
            texts = [t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text"))]
            report.add("charts", "\n".join(texts))
            plt.close(fig)


# =====================================================================================================
# Load
# =====================================================================================================
@dataclass
class LoadResult:
    """What the many-thread ``get_token`` run produced (see :func:`run_token_load`)."""

    threads: int
    calls: int
    errors: list[str]  # errors that reached a caller while a valid token existed
    errors_no_valid_token: int  # errors of callers for whose key no valid token existed any more
    seconds: float
    virtual_seconds: float
    lifetime: int
    keys: int
    refreshes: dict[Any, int]  # key -> successful fetches (IMDS round trips that ended with a token)
    failed_fetches: int  # fetches that gave up (every attempt failed): the valid token was served instead
    answers_200: dict[Any, int]  # key -> 200 answers logged by the emulator
    tokens_seen: dict[Any, int]  # key -> distinct tokens callers got
    attempts: int  # attempts recorded by the fetches' timelines
    requests: int  # token requests logged by the emulator
    failed_answers: int  # injected 429 / 500 answers (absorbed by retries)
    expired_served: int
    alive: int

    @property
    def requests_per_refresh(self) -> float:
        total = sum(self.refreshes.values())
        return sum(self.answers_200.values()) / total if total else 0.0

    @property
    def most_refreshes_allowed(self) -> int:
        """Refresh-ahead at half-life: one refresh per ``lifetime / 2`` of virtual time, plus the first."""
        return int(self.virtual_seconds // (self.lifetime / 2)) + 2


class CallClock:
    """Virtual epoch time that advances ``step`` s with each ``get_token`` call made (``tick``).

    While a token request is in flight (``pause()`` / ``resume()``) time stands still: IMDS answers
    in milliseconds and tokens live for hours, and without this a fetch starved of the GIL by 63
    busy threads would see minutes of virtual time go by.
    """

    def __init__(self, start: float = 1_800_000_000.0, step: float = 0.05) -> None:
        self.start, self.step = start, step
        self._n = 0
        self._paused = 0
        self._lock = threading.Lock()

    def tick(self) -> None:
        with self._lock:
            if not self._paused:
                self._n += 1

    def pause(self) -> None:
        with self._lock:
            self._paused += 1

    def resume(self) -> None:
        with self._lock:
            self._paused -= 1

    def __call__(self) -> float:
        return self.start + self._n * self.step


def run_token_load(threads: int = 64, calls: int = 1000, *, lifetime: int = 300, step: float = 0.5,
                   burst: int = 4, pause: float = 0.015, time_limit: float = 60.0) -> LoadResult:
    """``threads`` x ``calls`` ``get_token`` over 3 identities x 2 resources, 429 / 500 bursts injected.

    Tokens live ``lifetime`` s of virtual time and the clock moves ``step`` s per call, so every key
    is refreshed many times. Bursts of at most ``burst`` faults (fewer than the policy's 5 attempts)
    are injected at the token endpoint ``pause`` s after the previous burst is used up, so concurrent
    refreshes share them and a refresh sometimes fails altogether (then the valid token is served).
    Retry waits are virtual. ``errors`` lists the errors that reached a caller while a token for that
    key was still valid (must be none); ``errors_no_valid_token`` counts the others. Returns the counts
    the load test checks.
    """
    from mi_notebook.connect import Connection

    from mi_notebook.emulator import Emulator
    from mi_notebook.identity import Identity
    from mi_notebook.imds import ImdsClient
    from mi_notebook.tokens import TokenCache

    clock = CallClock(step=step)
    emu = Emulator(throttle=False, clock=clock, seed="load", token_lifetime=lifetime, user_assigned=2)
    retry_time = VirtualClock()
    errors_seen: list[str] = []
    seen: dict[Any, set[str]] = defaultdict(set)
    fetched: Counter = Counter()
    counters = {"expired": 0, "attempts": 0, "failed_fetches": 0, "injected": 0, "errors_no_valid_token": 0}
    lock = threading.Lock()
    with emu:
        client = ImdsClient(url=emu.imds_url, sleep=retry_time.sleep, clock=retry_time, wall_clock=clock,
                            timeout=(2.0, 5.0), rng=random.Random(3))
        request_token = client.request_token

        def counted(resource: str, identity: Any = None, **kw: Any) -> Any:
            clock.pause()
            try:
                tok = request_token(resource, identity, **kw)
            except errors.ManagedIdentityError as exc:
                with lock:
                    counters["failed_fetches"] += 1
                    counters["attempts"] += len(exc.timeline or ())
                raise
            finally:
                clock.resume()
            with lock:
                fetched[(identity, resource)] += 1
                counters["attempts"] += len(tok.timeline or ())
            return tok

        client.request_token = counted  # type: ignore[method-assign]
        conn = Connection(emu.imds_url, "explicit", client, reason="load")
        cache = TokenCache(clock=clock)
        identities = [Identity.system(), *(Identity.user(client_id=i.client_id) for i in emu.vm.user_identities)]
        keys = [(ident, res) for ident in identities for res in ("arm", "vault")]
        latest: dict[Any, float] = {}
        for ident, res in keys:  # every key holds a valid token before the faults start
            latest[(ident, res)] = conn.get_token(res, identity=ident, cache=cache).expires_on
        emu.requests.clear()
        fetched.clear()
        counters["attempts"] = 0
        stop = threading.Event()

        def injector() -> None:
            rng = random.Random(11)
            while not stop.is_set():
                if len(emu.faults) == 0:
                    emu.inject(rng.choice([429, 500]), "token", count=rng.randint(1, burst))
                    counters["injected"] += 1
                stop.wait(pause)

        def worker(n: int) -> None:
            rng = random.Random(n)
            for _ in range(calls):
                key = keys[rng.randrange(len(keys))]
                with lock:
                    asked_at = clock()
                    valid_before = latest[key] > asked_at  # a caller-visible token was still valid
                try:
                    tok = conn.get_token(key[1], identity=key[0], cache=cache)
                except Exception as exc:  # noqa: BLE001 - any error reaching a caller is what is counted
                    with lock:
                        if valid_before:
                            errors_seen.append(f"{type(exc).__name__}: {exc}")
                        else:
                            counters["errors_no_valid_token"] += 1
                else:
                    with lock:
                        seen[key].add(tok.fingerprint)
                        latest[key] = max(latest[key], tok.expires_on)
                        if tok.expires_on <= asked_at:
                            counters["expired"] += 1
                clock.tick()

        started = time.monotonic()
        pool = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(threads)]
        side = threading.Thread(target=injector, daemon=True)
        side.start()
        for t in pool:
            t.start()
        for t in pool:
            t.join(max(0.1, time_limit - (time.monotonic() - started)))
        stop.set()
        side.join(5)
        seconds = time.monotonic() - started
        alive = sum(t.is_alive() for t in pool)
        emu.clear_faults()
        records = _logged(emu, counters["attempts"], "imds", "token")
        client.close()
    uris = {"https://management.azure.com/": "arm", "https://vault.azure.net": "vault"}
    by_client_id = {ident.client_id: ident for ident in identities if ident.client_id}
    answers: Counter = Counter()
    for r in records:
        if r.status == 200:
            ident = by_client_id.get((r.query.get("client_id") or [None])[0], Identity.system())
            answers[(ident, uris.get((r.query.get("resource") or [""])[0], "?"))] += 1
    refreshes = {(ident, uris.get(res, "?")): n for (ident, res), n in fetched.items()}
    return LoadResult(
        threads, calls, errors_seen, counters["errors_no_valid_token"], seconds, clock() - clock.start, lifetime, len(keys), refreshes,
        counters["failed_fetches"], dict(answers), {k: len(v) for k, v in seen.items()}, counters["attempts"],
        len(records), sum(1 for r in records if r.status != 200), counters["expired"], alive)


@dataclass
class StormResult:
    """The emulator under many concurrent connections (see :func:`run_emulator_storm`)."""

    connections: int
    statuses: Counter
    unanswered: int
    seconds: float
    throttled_bodies_ok: bool
    serving_after: bool


def run_emulator_storm(connections: int = 200, *, path: str = "token", throttle: bool = True,
                       latency: float = 0.0) -> StormResult:
    """``connections`` clients at once (a barrier), each one request; the emulator clock is frozen."""
    import requests

    from mi_notebook.emulator import Emulator

    frozen = [1_800_000_000.0]
    emu = Emulator(throttle=throttle, clock=lambda: frozen[0], latency=latency, seed="storm")
    statuses: Counter = Counter()
    bodies: list[Any] = []
    unanswered = [0]
    lock = threading.Lock()
    with emu:
        url = emu.token_url if path == "token" else emu.imds_url + "/metadata/instance"
        params = ({"api-version": "2018-02-01", "resource": "https://management.azure.com/"} if path == "token"
                  else {"api-version": "2021-02-01"})
        barrier = threading.Barrier(connections)

        def one() -> None:
            try:
                barrier.wait(10)
                with requests.Session() as s:
                    s.trust_env = False
                    r = s.get(url, params=params, headers={"Metadata": "true"}, timeout=10)
                with lock:
                    statuses[r.status_code] += 1
                    if r.status_code == 429:
                        bodies.append(r.json())
            except Exception:  # noqa: BLE001 - an unanswered connection is what is counted
                with lock:
                    unanswered[0] += 1

        started = time.monotonic()
        pool = [threading.Thread(target=one, daemon=True) for _ in range(connections)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(30)
        seconds = time.monotonic() - started
        frozen[0] += 1.0  # the rate window moves on
        r = requests.get(url, params=params, headers={"Metadata": "true"}, timeout=5)
        serving = r.status_code == 200
    ok_bodies = all(isinstance(b, dict) and "error" in b for b in bodies)
    if path == "token":
        ok_bodies = ok_bodies and all(b.get("error_description") == "Temporarily throttled, too many requests"
                                      for b in bodies)
    return StormResult(connections, statuses, unanswered[0], seconds, ok_bodies, serving)


# =====================================================================================================
# The report
# =====================================================================================================
def _fuzz_counts(examples: int) -> dict[str, int]:
    s = strategies()
    from hypothesis import strategies as st

    counts: dict[str, int] = {}
    resource_and_identity = st.tuples(s["resource"], s["identity"])
    with InputBench() as bench:
        counts["Connection.get_token(resource, identity=...)"] = run_property(
            resource_and_identity, lambda v: bench.get_token(*v), examples)
        import importlib

        import mi_notebook as mi

        connect_module = importlib.import_module("mi_notebook.connect")
        connect_module.connect(bench.emu.imds_url, retry=RetryPolicy.no_retry())
        try:
            counts["mi.get_token(resource, identity=...)"] = run_property(
                resource_and_identity,
                lambda v: only_clear_errors(lambda: mi.get_token(v[0], identity=v[1])), examples)
        finally:
            connect_module.disconnect()
        counts["credential().get_token(scope)"] = run_property(
            s["scope"], bench.credential_get_token, examples)
        counts["ImdsClient.request_token"] = run_property(
            resource_and_identity, lambda v: bench.request_token(*v), examples)
        counts["ArmClient.get(path)"] = run_property(s["arm_path"], bench.arm_get, examples)
        counts["ArmClient.list(path)"] = run_property(s["arm_path"], bench.arm_list, examples)
        counts["mi-notebook CLI main([...])"] = run_property(
            s["cli"], lambda v: cli_property(bench.emu.imds_url, v[0], list(v[1])), examples)
        token = bench.conn.get_token("arm", cache=bench.cache).reveal()
        counts["emulator ARM side, garbage requests"] = run_property(
            arm_request_strategy(), lambda v: arm_fuzz_case(bench.emu, token, v), examples)
        if not arm_still_serving(bench.emu):
            raise AssertionError("the emulator's ARM side stopped serving after the fuzzing")
    return counts


def build_report(examples: int = 200, threads: int = 64, calls: int = 1000) -> str:
    """Run everything; the Markdown text of docs/reliability.md's figures."""
    started = time.monotonic()
    lines: list[str] = []
    results = run_fault_matrix()
    by_endpoint: dict[str, list[CaseResult]] = defaultdict(list)
    for r in results:
        by_endpoint[r.case.endpoint].append(r)
    fuzz = _fuzz_counts(examples)
    secrets = collect_secret_surfaces()
    leaks = secrets.leaks()
    load = run_token_load(threads, calls)
    storm_token = run_emulator_storm(200, path="token", throttle=True)
    storm_slow = run_emulator_storm(200, path="token", throttle=True, latency=2.0)
    storm_instance = run_emulator_storm(200, path="instance", throttle=True)
    storm_open = run_emulator_storm(200, path="token", throttle=False)

    passed = sum(r.passed for r in results)
    known = [r for r in results if r.case.known_bug and not r.passed]
    lines += ["| figure | value |", "|---|---|"]
    bugs = f"; {len(known)} known bug{'s' if len(known) != 1 else ''}, xfail" if known else ""
    lines.append(f"| fault cases passed | {passed} / {len(results)} ({len(FAULT_CASES)} fault cases x first attempt "
                 f"only / every attempt, at the token endpoint, instance metadata and ARM{bugs}) |")
    lines.append(f"| bad inputs tried (hypothesis) | {sum(fuzz.values()):,} over {len(fuzz)} entry points, "
                 "0 unexpected exception types |")
    lines.append(f"| tokens leaked | {len(leaks)} ({len(secrets.tokens)} tokens, "
                 f"{secrets.scanned_chars:,} characters over {sum(map(len, secrets.texts.values())):,} texts "
                 f"in {len(secrets.texts)} surfaces, every {LEAK_WINDOW}-char piece searched) |")
    lines.append(f"| IMDS requests per key per refresh, under load | {load.requests_per_refresh:.2f} "
                 f"({sum(load.answers_200.values())} token answers for {sum(load.refreshes.values())} refreshes "
                 f"of {load.keys} keys, {load.lifetime} s tokens, {load.virtual_seconds:,.0f} s of virtual time) |")
    lines.append(f"| errors surfaced to callers under load | {len(load.errors)} of {load.threads * load.calls:,} "
                 f"calls ({load.threads} threads x {load.calls:,}; {load.failed_answers} injected 429/500 "
                 f"answers absorbed; {load.seconds:.1f} s; {load.alive} threads stuck) |")
    lines.append("| packets to anything but loopback | {non_loopback} (the test suite's guard, installed) |")
    for what, storm in (("token requests, throttling on", storm_token),
                        ("instance-metadata requests, throttling on", storm_instance),
                        ("token requests, throttling on, 2 s latency", storm_slow),
                        ("token requests, throttling off", storm_open)):
        after = f"; serving after: {'yes' if storm.serving_after else 'NO'}" if storm is storm_token else ""
        lines.append(f"| emulator, {storm.connections} concurrent {what} | "
                     f"{_statuses(storm)}; {storm.unanswered} unanswered{after} |")
    lines += ["", "### The fault matrix", "",
              "| endpoint | fault | retried | error when every attempt fails | first attempt only | every attempt |",
              "|---|---|---|---|---|---|"]
    for endpoint in ("token", "instance", "arm"):
        rows = by_endpoint[endpoint]
        for first, every in zip(rows[0::2], rows[1::2], strict=True):
            c = first.case
            status = f" ({c.status})" if c.status is not None else ""
            lines.append(f"| {endpoint} | {c.name} | {'yes' if c.retried else 'no'} | {c.error.__name__}{status} | "
                         f"{_cell(first)} | {_cell(every)} |")
    if known:
        lines += ["", "Known bugs (tests marked `xfail(strict=True)`):", ""]
        for reason in sorted({r.case.known_bug for r in known if r.case.known_bug}):
            lines.append(f"- {reason}")
    lines += ["", "### Bad input", "", "| entry point | inputs tried |", "|---|---|"]
    lines += [f"| {name} | {n:,} |" for name, n in fuzz.items()]
    lines += ["", f"_Generated by `python bench/reliability_report.py` in {time.monotonic() - started:.0f} s "
              f"(Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)._"]
    return "\n".join(lines)


def _statuses(storm: StormResult) -> str:
    return ", ".join(f"{n} x {status}" for status, n in sorted(storm.statuses.items()))


def _cell(r: CaseResult) -> str:
    mark = "pass" if r.passed else ("xfail" if r.case.known_bug else "**FAIL**")
    shown = ", ".join("-" if s is None else str(s) for s in r.statuses)
    return f"{mark}: {shown}; {r.total:.1f} s <= {r.bound:.1f} s"


START_MARKER = "<!-- reliability figures: generated by bench/reliability_report.py, do not edit -->"
END_MARKER = "<!-- end of generated figures -->"


def update_document(path: Path, report: str) -> None:
    """Replace the text between the two markers in ``path`` with ``report``."""
    text = path.read_text(encoding="utf-8")
    head, found, rest = text.partition(START_MARKER)
    _, found_end, tail = rest.partition(END_MARKER)
    if not (found and found_end):
        raise SystemExit(f"{path} lacks the markers {START_MARKER!r} ... {END_MARKER!r}")
    path.write_text(f"{head}{START_MARKER}\n{report}\n{END_MARKER}{tail}", encoding="utf-8")


def install_loopback_guard() -> Any:
    """The test suite's guard (tests/_guard): any non-loopback connection or name lookup is refused."""
    guard_dir = str(ROOT / "tests" / "_guard")
    if guard_dir not in sys.path:
        sys.path.insert(0, guard_dir)
    import loopback_guard

    loopback_guard.install()
    return loopback_guard


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200, help="hypothesis examples per property")
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--calls", type=int, default=1000, help="get_token calls per thread")
    parser.add_argument("--update", metavar="FILE", nargs="?", const="",
                        help="also replace the figures between the markers in FILE "
                             "(default: docs/reliability.md and README.md)")
    ns = parser.parse_args(argv)
    os.environ.setdefault("MI_NOTEBOOK_MODE", "emulator")  # nothing may probe 169.254.169.254
    guard = install_loopback_guard()
    report = build_report(ns.examples, ns.threads, ns.calls).replace("{non_loopback}", str(len(guard.violations)))
    print(report)
    if ns.update is not None:
        for path in [Path(ns.update)] if ns.update else [ROOT / "docs" / "reliability.md", ROOT / "README.md"]:
            update_document(path, report)
    for violation in guard.violations:
        print(f"non-loopback traffic attempted: {violation}", file=sys.stderr)
    return 1 if guard.violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
