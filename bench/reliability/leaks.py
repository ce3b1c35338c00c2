"""Secrets: run every scenario that touches a token, keep everything a user or a log could see, scan it.

:func:`collect_secret_surfaces` gathers every repr / str / HTML / log record / error / CLI output /
chart text / widget state of a full run, with the raw tokens issued meanwhile; :func:`find_leaks`
searches those texts for each token and every ``LEAK_WINDOW``-character piece of it.

Example::

    >>> report = SecretsReport(tokens={"eyJ" + "x" * 60})
    >>> report.add("log", "nothing to see", "but " + "x" * 40)
    >>> [surface for surface, _ in report.leaks()]
    ['log']
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bench.reliability.fuzz import run_cli
from bench.reliability.seams import (
    VirtualClock,
    client_timeout,
    connect_current,
    forget_connection,
    record_issued_tokens,
    use_virtual_time,
)
from mi_notebook import errors
from mi_notebook.retry import RetryPolicy

JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
LEAK_WINDOW = 40


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
    """A DEBUG handler on the root logger and on urllib3 / requests (which may not propagate).

    Example::

        >>> with capture_logs() as logs:
        ...     logging.getLogger("urllib3.connectionpool").debug("GET %s", "/x")
        >>> logs.texts[0]  # (once per logger it reached: urllib3's own, then the root)
        "DEBUG urllib3.connectionpool GET /x '/x'"
    """
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
        """Keep ``values`` (as text) as seen on ``surface``."""
        for value in values:
            self.texts[surface].append(value if isinstance(value, str) else str(value))

    @property
    def scanned_chars(self) -> int:
        """How many characters were kept, over every surface."""
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
    token its issuer hands out) and from ``.reveal()``, only to know what to search for. Connects
    (to its own emulator) and leaves no current connection and an empty token cache behind.

    Example::

        >>> report = collect_secret_surfaces()
        >>> report.leaks(), len(report.tokens) >= 9, "error:429" in report.texts
        ([], True, True)
    """
    from mi_notebook.arm_client import ArmClient
    from mi_notebook.cache import default_cache
    from mi_notebook.claims import decode_unverified as decode
    from mi_notebook.emulator import Emulator
    from mi_notebook.identity import Identity
    from mi_notebook.sdk_credential import credential

    saved_env = {name: os.environ.get(name) for name in ("MI_NOTEBOOK_ARM_URL", "MI_NOTEBOOK_ARM_CA_BUNDLE")}
    report = SecretsReport()
    clock = VirtualClock()
    with capture_logs() as logs, Emulator(throttle=False, seed="secrets") as emu:
        issued = record_issued_tokens(emu, report.tokens)  # every token the emulator hands out
        # ARM for anything that locates it from the environment (widgets, mi.arm()): the emulator's
        os.environ["MI_NOTEBOOK_ARM_URL"], os.environ["MI_NOTEBOOK_ARM_CA_BUNDLE"] = emu.arm_url, emu.ca_bundle
        conn = connect_current(emu.imds_url)
        use_virtual_time(conn.client, clock)
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
            with client_timeout(conn.client, (1.0, 0.1)):
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
            # the credential, as the Azure SDK uses it
            cred = credential(connection=conn)
            sdk = cred.get_token("https://management.azure.com/.default")
            info = cred.get_token_info("https://vault.azure.net/.default")
            report.add("credential", repr(cred), repr(sdk), repr(info), str(info))
            # ARM: success, lists, a 403, the 401 refresh, a 500 every time
            for ident in [None, users[-1]]:
                arm = ArmClient(emu.arm_url, verify=emu.ca_bundle, connection=conn, identity=ident,
                                clock=clock, retry=RetryPolicy(jitter=0))
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
            forget_connection()
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

