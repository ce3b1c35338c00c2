"""The dump-everything scan (issue 24): on every host profile of the emulator, build what a user can hold
(connections, detections, sources, tokens, claims, caches, credentials, errors), dump each one every way
it can be dumped, add the agent's files and status, the CLI's outputs, the DEBUG logs and the warnings,
and search all of it for every token and every host secret: the whole value and any 8-character piece.

Dumps: ``repr``, ``str``, ``format``, ``_repr_html_``, ``dataclasses.asdict`` (dataclasses),
``vars``, ``copy.deepcopy`` then ``repr``/``vars``, ``pickle.dumps`` when it pickles (its bytes; when
it refuses, the refusal's message), ``json.dumps(obj.to_dict())`` where offered, and for errors the
traceback too. The secrets: every token the emulator issued (read on its side), the host secret
(``MSI_SECRET`` / ``IDENTITY_HEADER``), every Arc key file written, the wrong secrets used to provoke
errors, and an ``AZURE_CLIENT_SECRET`` planted in each environment. tests/test_secrets_scan.py is the
longer run over one VM (40-character pieces, ARM, widgets, charts, notebooks).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import glob
import json
import os
import pickle
import secrets
import shutil
import signal
import tempfile
import time
import traceback
import warnings
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from helpers import cli_output
from test_agent_support import agent_pid, alive

import mi_notebook as mi
from bench.reliability.leaks import capture_logs, find_leaks
from mi_notebook import errors
from mi_notebook.agent.client import AgentClient
from mi_notebook.clock import VirtualClock
from mi_notebook.emulator import Emulator

pytestmark = pytest.mark.usefixtures("clean_connection")

PROFILES = ("vm", "azureml", "appservice", "arc", "cloudshell")
SECRET_NAMES = ("MSI_SECRET", "IDENTITY_HEADER", "AZURE_CLIENT_SECRET")
WINDOW = 8
UNKNOWN_ID = "client_id=00000000-0000-0000-0000-00000000dead"


class Surfaces:
    """Every text seen, by surface, and every secret to look for."""

    def __init__(self) -> None:
        self.texts: dict[str, list[str]] = defaultdict(list)
        self.secrets: set[str] = set()

    def add(self, surface: str, *texts: str) -> None:
        self.texts[surface].extend(texts)

    def dump(self, surface: str, obj: Any) -> None:
        """``obj`` dumped every way it can be (a refusal is kept as its message: it is scanned too)."""
        ways: list[tuple[str, Callable[[], Any]]] = [
            ("repr", lambda: repr(obj)), ("str", lambda: str(obj)), ("format", lambda: format(obj, "")),
            ("html", lambda: obj._repr_html_() if hasattr(obj, "_repr_html_") else ""),
            ("vars", lambda: repr(vars(obj))),
            ("deepcopy", lambda: _copied(obj)),
            ("pickle", lambda: pickle.dumps(obj).decode("latin-1")),
        ]
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            ways.append(("asdict", lambda: json.dumps(dataclasses.asdict(obj), default=repr)))
        if callable(getattr(obj, "to_dict", None)):
            ways.append(("to_dict", lambda: json.dumps(obj.to_dict(), default=repr)))
        if isinstance(obj, BaseException):
            ways.append(("traceback", lambda: "".join(traceback.format_exception(obj))))
        for name, make in ways:
            try:
                text = make()
            except Exception as exc:  # noqa: BLE001 - a dump that refuses is fine; its words are scanned
                text = f"{name} refused: {type(exc).__name__}: {exc}"
            self.add(surface, str(text))

    def leaks(self) -> list[tuple[str, str]]:
        return find_leaks(self.texts, self.secrets, WINDOW)


def _copied(obj: Any) -> str:
    made = copy.deepcopy(obj)
    return repr(made) + (repr(vars(made)) if hasattr(made, "__dict__") else "")


def record_issued_tokens(emu: Emulator, sink: set[str]) -> Callable[[], None]:
    """Add every token ``emu`` issues from now on (a managed identity's, and a signed-in user's on
    azureml / cloudshell) to ``sink``; the returned ``issued()`` adds the ones its issuers still hold."""
    issuers = [emu.issuer, emu.user_tokens]
    for issuer in issuers:
        def recording(*args: Any, _get: Callable[..., Any] = issuer.get, **kw: Any) -> Any:
            token = _get(*args, **kw)
            sink.add(token.access_token)
            return token
        issuer.get = recording

    def issued() -> None:
        for issuer in issuers:
            sink.update(t.access_token for t in issuer.cached())
    return issued


def _provoked(call: Callable[[], Any]) -> BaseException:
    try:
        call()
    except (ValueError, errors.ManagedIdentityError) as exc:
        return exc
    raise AssertionError("expected an error")


@pytest.fixture(scope="module")
def agent():
    """A real agent in its own process, at ``<runtime>/mi-notebook`` (so ``XDG_RUNTIME_DIR=<runtime>``
    makes the CLI share through it too); stopped (killed if need be) afterwards."""
    runtime = tempfile.mkdtemp(prefix="mia-")
    directory = os.path.join(runtime, "mi-notebook")
    client = AgentClient(directory, idle_timeout=300)
    assert client.ensure_running()
    try:
        yield runtime, directory
    finally:
        pid = agent_pid(directory)
        AgentClient(directory, start=False, read_timeout=0.5).stop()
        deadline = time.monotonic() + 5
        while pid is not None and alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if pid is not None and alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(runtime, ignore_errors=True)


_cli = cli_output


def _environment(emu: Emulator) -> dict[str, str]:
    env = dict(emu.environment) or {"MI_NOTEBOOK_IMDS_URL": emu.imds_url}  # a VM sets none: point at the emulator
    env["AZURE_CLIENT_SECRET"] = "sp-" + secrets.token_urlsafe(24)  # a variable no source may keep
    return env


def _unreachable(env: dict[str, str]) -> dict[str, str]:
    """The same variables with the endpoint on a closed loopback port."""
    moved = dict(env)
    for name in ("MSI_ENDPOINT", "IDENTITY_ENDPOINT", "MI_NOTEBOOK_IMDS_URL"):
        if name in moved:
            moved[name] = "http://127.0.0.1:9" + ("" if name == "MI_NOTEBOOK_IMDS_URL" else "/token")
    return moved


def _wrong_secret(env: dict[str, str], surfaces: Surfaces) -> dict[str, str] | None:
    name = next((n for n in ("MSI_SECRET", "IDENTITY_HEADER") if n in env), None)
    if name is None:
        return None
    wrong = "wrong-" + secrets.token_urlsafe(18)
    surfaces.secrets.add(wrong)
    return {**env, name: wrong}


def _arc_keys(emu: Emulator) -> set[str]:
    keys = set()
    for path in glob.glob(os.path.join(emu.arc_key_dir or "/nonexistent", "*.key")):
        with open(path, encoding="ascii") as handle:
            keys.add(handle.read().strip())
    return keys


def collect(profile: str, agent: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> Surfaces:
    """Everything a user can see on ``profile``, and every secret to look for."""
    runtime, agent_directory = agent
    seen = Surfaces()
    issued: set[str] = set()
    arc_dir = tempfile.mkdtemp(prefix="mi-arc-") if profile == "arc" else None
    with capture_logs() as logs, warnings.catch_warnings(record=True) as caught, \
            Emulator(profile=profile, keyvault=False, throttle=False, arc_key_dir=arc_dir) as emu:
        warnings.simplefilter("always")
        more_tokens = record_issued_tokens(emu, issued)
        env = _environment(emu)
        seen.secrets.update(env[name] for name in SECRET_NAMES if name in env)
        options: dict[str, Any] = {"environ": env, "arc_key_dir": emu.arc_key_dir} if profile == "arc" else {"environ": env}
        virtual = {"clock": VirtualClock(time.time())}  # retries of the provoked errors in virtual time

        # --- connections, detections, sources, tokens, claims, caches, credentials ---------------------------
        # (each connect() closes the one before: each connection is used in turn)
        tokens: list[Any] = []

        def use(conn: Any) -> None:
            tokens.extend([conn.get_token("arm", force_refresh=True), conn.get_token("arm"), conn.get_token("vault")])
            seen.dump("connection", conn)
            seen.dump("source", conn.client)
            seen.dump("detection", conn.detection)
            seen.dump("cache", conn.cache)
            seen.add("cache", repr(conn.cache.entries()), repr(conn.cache.tokens()))
            cred = mi.credential(connection=conn)
            for value in (cred, cred.get_token("https://management.azure.com/.default"),
                          cred.get_token_info("https://vault.azure.net/.default")):
                seen.dump("credential", value)
            acred = mi.aio.credential(connection=conn)
            for value in (acred, asyncio.run(acred.get_token("https://management.azure.com/.default")),
                          asyncio.run(acred.get_token_info("https://vault.azure.net/.default"))):
                seen.dump("credential", value)

        own = mi.connect(**options)
        use(own)
        for name, call in {"unknown-identity": lambda: own.get_token("arm", identity=UNKNOWN_ID, force_refresh=True),
                           "bad-resource": lambda: own.get_token("nope nope")}.items():
            seen.dump(f"error:{name}", _provoked(call))
        shared = mi.connect(**options, share=True, agent_dir=agent_directory)
        assert type(shared.cache).__name__ == "SharedCache"
        use(shared)
        seen.dump("error:unknown-identity-via-agent",
                  _provoked(lambda: shared.get_token("arm", identity=UNKNOWN_ID, force_refresh=True)))
        played = mi.connect(mode="emulator", profile=profile)  # the emulator connect() starts and plays
        more_played = record_issued_tokens(played.emulator, issued)
        seen.secrets.update(played.emulator.environment[n] for n in SECRET_NAMES if n in played.emulator.environment)
        use(played)
        more_played()
        seen.secrets |= _arc_keys(played.emulator)
        seen.dump("detection", mi.detect(env, sysfs_root="/nonexistent", himds_path="/nonexistent"))
        for tok in tokens:
            seen.dump("token", tok)
            seen.dump("claims", tok.claims)
            seen.add("claims", repr(tok.claims.checks()))
            if tok.timeline is not None:
                seen.dump("timeline", tok.timeline)

        # --- errors: provoked, each dumped ------------------------------------------------------------------
        provoked: dict[str, Callable[[], Any]] = {
            "unreachable": lambda: mi.connect(**{**options, "environ": _unreachable(env)}, **virtual).get_token(
                "arm", force_refresh=True),
        }
        wrong = _wrong_secret(env, seen)
        if wrong is not None:
            provoked["wrong-secret"] = lambda: mi.connect(environ=wrong, **virtual).get_token("arm", force_refresh=True)
            provoked["wrong-secret-via-agent"] = lambda: mi.connect(
                environ=wrong, share=True, agent_dir=agent_directory).get_token("graph", force_refresh=True)
        for fault in (500, "html", "truncated", "bad-expires"):
            def faulty(fault: Any = fault) -> Any:
                emu.inject(fault, count=None)
                try:
                    return mi.connect(**options, **virtual).get_token("graph", force_refresh=True)
                finally:
                    emu.clear_faults()
            provoked[f"fault-{fault}"] = faulty
        for name, call in provoked.items():
            err = _provoked(call)
            seen.dump(f"error:{name}", err)
            if getattr(err, "timeline", None) is not None:
                seen.dump(f"error:{name}", err.timeline)

        # --- the CLI, as a user runs it in this host's environment -----------------------------------------
        monkeypatch.delenv("MI_NOTEBOOK_MODE", raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        if profile == "arc":  # the CLI reads Arc's keys where a real agent keeps them: here, the emulator's directory
            import mi_notebook.sources.arc as arc_source

            monkeypatch.setattr(arc_source, "default_key_dir", lambda *a, **k: emu.arc_key_dir)
        for argv in (["token", "arm"], ["token", "vault", "-o", "json"], ["token", "arm", "-o", "tsv"], ["doctor"]):
            seen.add("cli", _cli(argv)[1])
        monkeypatch.setenv("MI_NOTEBOOK_SHARE", "1")
        monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
        seen.add("cli", _cli(["token", "storage"])[1])
        if wrong is not None:
            for name, value in wrong.items():
                monkeypatch.setenv(name, value)
            seen.add("cli", _cli(["token", "arm"])[1], _cli(["doctor"])[1])

        # --- the agent: its files, its status --------------------------------------------------------------
        for path in glob.glob(os.path.join(agent_directory, "*")):
            if os.path.isfile(path):
                with open(path, encoding="utf-8", errors="replace") as handle:
                    seen.add("agent", handle.read())
        seen.add("agent", json.dumps(AgentClient(agent_directory, start=False).status()),
                 _cli(["agent", "status", "--dir", agent_directory])[1],
                 _cli(["agent", "status", "--dir", agent_directory, "--json"])[1])

        # --- every secret: tokens read on the emulators' side, Arc's keys -----------------------------------
        more_tokens()
        seen.secrets |= issued | _arc_keys(emu)
        for tok in tokens:
            assert tok.reveal() in issued  # the recorder saw every token this process holds
        mi.disconnect()
    seen.add("log", *logs.texts)
    seen.add("warnings", *(str(w.message) for w in caught))
    if arc_dir:
        shutil.rmtree(arc_dir, ignore_errors=True)
    return seen


@pytest.mark.timeout(240)
@pytest.mark.parametrize("profile", PROFILES)
def test_nothing_a_user_can_dump_holds_a_token_or_a_host_secret(profile, agent, monkeypatch):
    seen = collect(profile, agent, monkeypatch)
    # the scan is not vacuous: every surface produced text, and there were secrets to find
    surfaces = {"connection", "source", "detection", "cache", "token", "claims", "timeline", "credential", "cli",
                "agent", "log", "error:unknown-identity", "error:unreachable", "error:fault-500", "error:fault-html"}
    assert surfaces <= set(seen.texts), surfaces - set(seen.texts)
    assert all(any(t.strip() for t in seen.texts[s]) for s in surfaces)
    assert len(seen.secrets) >= 5 and all(len(s) >= WINDOW for s in seen.secrets)
    if profile in ("azureml", "appservice"):
        assert "error:wrong-secret" in seen.texts and "error:wrong-secret-via-agent" in seen.texts
    if profile == "arc":
        assert any(len(s) == 64 for s in seen.secrets)  # Arc's key files were read
    # the log records were caught (the plain-HTTP wire is the standard library's and logs nothing itself)
    assert " mi_notebook." in "\n".join(seen.texts["log"])
    cli = "\n".join(seen.texts["cli"])
    assert "<redacted" in cli and "sha256:" in cli and "Endpoint" in cli  # tokens were printed (redacted), doctor ran
    assert "fetched a token" in "\n".join(seen.texts["agent"])  # the agent's log has its records
    leaks = seen.leaks()
    assert leaks == [], f"{len(leaks)} leaks on {profile}, e.g. {leaks[:3]}"


def test_the_scan_finds_any_8_character_piece_in_any_dump():
    """Control: an object that did hold a secret would be found, whichever way it was dumped."""

    @dataclasses.dataclass
    class Careless:
        note: str

    secret = "host-" + secrets.token_urlsafe(20)
    seen = Surfaces()
    seen.secrets.add(secret)
    seen.dump("planted", Careless("harmless"))
    assert seen.leaks() == []
    seen.dump("planted", Careless(f"x {secret[5:13]} y"))  # 8 characters of it, in every dump of the object
    assert {surface for surface, _ in seen.leaks()} == {"planted"}
    seen = Surfaces()
    seen.secrets.add(secret)
    seen.add("planted", secret[3:10])  # 7 characters are not a leak
    assert seen.leaks() == []
