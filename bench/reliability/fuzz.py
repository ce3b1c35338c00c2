"""Bad input: hypothesis strategies for the public entry points, and the properties the fuzz tests check.

Only a clear ``ValueError`` or ``ManagedIdentityError`` may come out of ``Connection.get_token``,
``mi.get_token``, ``credential().get_token``, ``ImdsClient.request_token``, ``ArmClient.get/list`` and
the CLI's ``main([...])`` (an exit code, never a traceback), whatever the input; :func:`run_fuzz` runs
every property outside pytest for the report (the ARM side's garbage requests: :mod:`.arm_garbage`).

Example::

    >>> with InputBench() as bench:
    ...     type(bench.get_token("not a resource", None)).__name__, bench.get_token("arm", None)
    ('ValueError', None)
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable
from typing import Any

from bench.reliability.seams import VirtualClock, connect_current, disconnect_current, explicit_connection
from mi_notebook import errors
from mi_notebook.retry import RetryPolicy


def strategies() -> dict[str, Any]:
    """Hypothesis strategies for the public entry points' inputs (imported lazily: a test dependency).

    Example::

        >>> sorted(strategies())
        ['arm_path', 'cli', 'garbage', 'identity', 'resource', 'scope']
    """
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
    at once (a 400 for an unknown resource or identity is not retried). Each property method returns
    the clear error it raised, or None.

    Example::

        >>> with InputBench() as bench:
        ...     type(bench.arm_get("/subscriptions/nope")).__name__, bench.credential_get_token(["vault"])
        ('ArmError', None)
    """

    def __init__(self) -> None:
        from mi_notebook.emulator import Emulator

        self.emu = Emulator(throttle=False, seed="fuzz")
        self.clock = VirtualClock()

    def __enter__(self) -> InputBench:
        from mi_notebook.arm_client import ArmClient
        from mi_notebook.cache import TokenCache
        from mi_notebook.sdk_credential import credential
        from mi_notebook.sources.imds import ImdsClient

        self.emu.start()
        no_retry = RetryPolicy.no_retry()
        self.client = ImdsClient(url=self.emu.imds_url, retry=no_retry, clock=self.clock,
                                 timeout=(1.0, 2.0))
        self.conn = explicit_connection(self.emu.imds_url, self.client, "fuzz bench")
        self.cache = TokenCache()
        self.credential = credential(connection=self.conn)
        self.arm = ArmClient(self.emu.arm_url, verify=self.emu.ca_bundle, connection=self.conn, retry=no_retry,
                             clock=self.clock, timeout=(1.0, 2.0))
        return self

    def __exit__(self, *exc: object) -> None:
        self.arm.close()
        self.client.close()
        self.emu.stop()

    # the properties: each returns the clear error it raised, or None
    def get_token(self, resource: Any, identity: Any) -> BaseException | None:
        """``Connection.get_token(resource, identity=identity)`` through the bench's own cache."""
        return only_clear_errors(lambda: self.conn.get_token(resource, identity=identity, cache=self.cache))

    def credential_get_token(self, scope: Any) -> BaseException | None:
        """``credential().get_token(*scopes)`` (``scope``: one scope or a list of them)."""
        scopes = scope if isinstance(scope, list) else [scope]
        return only_clear_errors(lambda: self.credential.get_token(*scopes))

    def request_token(self, resource: Any, identity: Any) -> BaseException | None:
        """``ImdsClient.request_token(resource, identity)``: no cache, no connection."""
        return only_clear_errors(lambda: self.client.request_token(resource, identity))

    def arm_get(self, path: Any) -> BaseException | None:
        """``ArmClient.get(path)``."""
        return only_clear_errors(lambda: self.arm.get(path))

    def arm_list(self, path: Any) -> BaseException | None:
        """``ArmClient.list(path)``, two pages at most."""
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
    """Garbage arguments for a subcommand, always pointed at ``imds_url`` (never a real probe).

    Raises AssertionError for an exit code other than 0, 1 or 2, or a traceback.

    Example::

        >>> cli_property("http://127.0.0.1:9", "nope", ["--json"])[0]
        2
    """
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
    """Run a hypothesis property outside pytest; returns how many inputs were tried.

    Example::

        >>> from hypothesis import strategies as st
        >>> run_property(st.integers(), lambda n: only_clear_errors(lambda: [0][n:]), 25)
        25
    """
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


def run_fuzz(examples: int) -> dict[str, int]:
    """Every bad-input property, ``examples`` inputs each, outside pytest: entry point -> inputs tried.

    Raises on the first input that breaks a property, and if the emulator's ARM side stopped serving.

    Example::

        >>> counts = run_fuzz(2)
        >>> len(counts), set(counts.values())
        (8, {2})
    """
    from hypothesis import strategies as st

    import mi_notebook as mi
    from bench.reliability.arm_garbage import arm_fuzz_case, arm_request_strategy, arm_still_serving

    s = strategies()
    counts: dict[str, int] = {}
    resource_and_identity = st.tuples(s["resource"], s["identity"])
    with InputBench() as bench:
        counts["Connection.get_token(resource, identity=...)"] = run_property(
            resource_and_identity, lambda v: bench.get_token(*v), examples)
        connect_current(bench.emu.imds_url, retry=RetryPolicy.no_retry())
        try:
            counts["mi.get_token(resource, identity=...)"] = run_property(
                resource_and_identity,
                lambda v: only_clear_errors(lambda: mi.get_token(v[0], identity=v[1])), examples)
        finally:
            disconnect_current()
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
