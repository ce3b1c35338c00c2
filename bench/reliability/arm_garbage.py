"""The emulator's ARM side under garbage: raw requests over TLS, and bytes that are not even TLS.

Every answer must be one ARM documents (an allowed status; errors in ARM's ``{"error": {"code",
"message"}}`` envelope; never a 500 ARM would not send), plain bytes on the TLS port must be refused
without an answer, and the server must keep serving.

Example::

    >>> from mi_notebook.emulator import Emulator
    >>> with Emulator(throttle=False) as emu:
    ...     token = arm_token(emu)
    ...     arm_fuzz_case(emu, token, ("GET", ["subscriptions", "{s}"], "api-version=2021-04-01", "valid", b""))
    ...     arm_exchange(emu, arm_request(emu, token, ("DELETE", ["subscriptions"], "", "none", b"")))[0]
    401
"""

from __future__ import annotations

import errno
import http.client
import json
import socket
import ssl
from typing import Any

ARM_ALLOWED = {200, 400, 401, 403, 404, 405, 413, 414, 429, 431, 505}
TLS_ALERT = 0x15  # the TLS record content type of an alert

Answer = tuple[int, dict[str, str], bytes]


def arm_address(emu: Any) -> tuple[str, int]:
    """``(host, port)`` of the emulator's ARM side.

    Example::

        >>> from types import SimpleNamespace
        >>> arm_address(SimpleNamespace(arm_url="https://127.0.0.1:8443"))
        ('127.0.0.1', 8443)
    """
    host, port = emu.arm_url.split("//", 1)[1].rsplit(":", 1)
    return host, int(port)


def arm_token(emu: Any) -> str:
    """A raw ARM bearer token, straight from the emulator's IMDS.

    Example::

        >>> from mi_notebook.emulator import Emulator
        >>> with Emulator(throttle=False) as emu:
        ...     arm_token(emu).startswith("eyJ")
        True
    """
    import requests

    return requests.get(emu.token_url, headers={"Metadata": "true"}, timeout=5,
                        params={"api-version": "2018-02-01", "resource": "https://management.azure.com/"}
                        ).json()["access_token"]


def arm_exchange(emu: Any, raw: bytes, method: str = "GET", timeout: float = 5.0) -> Answer | None:
    """Send raw bytes over TLS to the emulator's ARM port; parse one answer (None: closed without one).

    Example::

        >>> from mi_notebook.emulator import Emulator
        >>> with Emulator(throttle=False) as emu:
        ...     status, headers, body = arm_exchange(emu, b"GET /subscriptions HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
        >>> status, json.loads(body)["error"]["code"]
        (401, 'AuthenticationFailed')
    """
    host, port = arm_address(emu)
    ctx = ssl.create_default_context(cafile=emu.ca_bundle)
    with socket.create_connection((host, port), timeout=timeout) as raw_sock, \
            ctx.wrap_socket(raw_sock, server_hostname=host) as sock:
        sock.sendall(raw)
        resp = http.client.HTTPResponse(sock, method=method)
        try:
            resp.begin()
        except (http.client.RemoteDisconnected, ConnectionResetError, ssl.SSLError):
            return None
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


def check_arm_answer(answer: Answer | None, method: str) -> None:
    """A documented ARM answer: an allowed status, ARM's JSON error envelope on errors.

    Example::

        >>> check_arm_answer((404, {}, b'{"error": {"code": "NotFound", "message": "no"}}'), "GET")
        >>> check_arm_answer((500, {}, b'{}'), "GET")
        Traceback (most recent call last):
        AssertionError: status 500: b'{}'
    """
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
    """Whether the ARM side still answers a good request (a token from IMDS, then the VM's resource group).

    Example::

        >>> from mi_notebook.emulator import Emulator
        >>> with Emulator(throttle=False) as emu:
        ...     arm_still_serving(emu)
        True
    """
    import requests

    r = requests.get(emu.arm_url + emu.vm.resource_group_id, params={"api-version": "2021-04-01"},
                     headers={"Authorization": "Bearer " + arm_token(emu)}, verify=emu.ca_bundle, timeout=5)
    return r.status_code == 200 and r.json()["name"] == emu.vm.resource_group


def arm_request_strategy() -> Any:
    """Hypothesis strategy of ``(method, path segments, query, auth, body)`` for :func:`arm_request`.

    Path segments ``{s}`` and ``{rg}`` stand for the emulator's subscription and resource group;
    ``auth`` is one of ``valid``, ``none``, ``garbage``, ``bearer-empty``, ``basic``, ``expired-shape``.

    Example::

        >>> from bench.reliability.fuzz import run_property
        >>> run_property(arm_request_strategy(), lambda v: (len(v) == 5 and isinstance(v[4], bytes)) or 1 / 0, 10)
        10
    """
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


def arm_request(emu: Any, token: str, value: tuple[Any, ...]) -> bytes:
    """The raw HTTP/1.1 request for one ``(method, segments, query, auth, body)`` value.

    Example::

        >>> from types import SimpleNamespace
        >>> emu = SimpleNamespace(vm=SimpleNamespace(subscription_id="S", resource_group="RG"))
        >>> arm_request(emu, "T", ("GET", ["subscriptions", "{s}", "resourcegroups", "{rg}"], "a=1", "valid", b"x"))
        b'GET /subscriptions/S/resourcegroups/RG?a=1 HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nConnection: close\\r\\nAuthorization: Bearer T\\r\\nContent-Length: 1\\r\\n\\r\\nx'
    """
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
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def arm_fuzz_case(emu: Any, token: str, value: tuple[Any, ...]) -> None:
    """One garbage ARM request: answered as ARM documents, never a 500 ARM would not send.

    Raises AssertionError otherwise (see :func:`check_arm_answer`).

    Example::

        >>> from mi_notebook.emulator import Emulator
        >>> with Emulator(throttle=False) as emu:
        ...     arm_fuzz_case(emu, arm_token(emu), ("FOO", ["subscriptions", ".."], "api-version=x", "garbage", b"{}"))
    """
    check_arm_answer(arm_exchange(emu, arm_request(emu, token, value), value[0]), value[0])


# --- not even TLS ----------------------------------------------------------------------------------
def plain_exchange(host: str, port: int, raw: bytes, timeout: float = 5.0) -> bytes:
    """Send ``raw`` as is (no TLS), half-close, and read until the server closes; what it sent back.

    A reset counts as closing (a server that closes with unread data resets, and may do so before the
    half-close). A server that neither answers nor closes within ``timeout`` raises AssertionError: it
    would hold a thread per connection.

    Example::

        >>> from mi_notebook.emulator import Emulator
        >>> with Emulator(throttle=False) as emu:
        ...     back = plain_exchange(*arm_address(emu), b"hello")
        >>> back == b"" or back[0] == TLS_ALERT  # a reset, or a TLS alert and the end
        True
    """
    received = b""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        try:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(4096):
                received += chunk
        except TimeoutError as exc:
            raise AssertionError(f"the server neither answered nor closed within {timeout} s: "
                                 f"{received[:60]!r} so far") from exc
        except ConnectionError:  # reset, or a broken pipe: the server closed first
            pass
        except OSError as exc:  # shutting down a connection the server has already reset
            if exc.errno != errno.ENOTCONN:
                raise
    return received


def check_refused(received: bytes) -> None:
    """What a TLS server may send back to bytes that are not TLS: nothing, or TLS alert records only.

    Example::

        >>> check_refused(b""); check_refused(bytes([0x15, 3, 3, 0, 2, 2, 50]))
        >>> check_refused(b"HTTP/1.1 400 Bad Request\\r\\n\\r\\n")
        Traceback (most recent call last):
        AssertionError: not a TLS alert: b'HTTP/1.1 400 Bad Request\\r\\n\\r\\n'
    """
    rest = received
    while rest:
        if len(rest) < 5 or rest[0] != TLS_ALERT or rest[1] != 3:
            raise AssertionError(f"not a TLS alert: {received[:200]!r}")
        length = int.from_bytes(rest[3:5], "big")
        if len(rest) < 5 + length:
            raise AssertionError(f"a truncated TLS record: {received[:200]!r}")
        rest = rest[5 + length:]


def plain_garbage_case(emu: Any, raw: bytes) -> None:
    """Plain bytes on the ARM port: refused (nothing but a TLS alert, then closed), no request logged,
    and the server still serves.

    Example::

        >>> from mi_notebook.emulator import Emulator
        >>> with Emulator(throttle=False) as emu:
        ...     plain_garbage_case(emu, b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
    """
    mark = emu.requests.last
    check_refused(plain_exchange(*arm_address(emu), raw))
    served = [r for r in _records_after(emu, mark) if r.service == "arm"]
    if served:
        raise AssertionError(f"plain bytes were served as a request: {served[0]}")
    if not arm_still_serving(emu):
        raise AssertionError(f"the ARM side stopped serving after {raw[:60]!r}")


def _records_after(emu: Any, mark: Any) -> list[Any]:
    """The emulator's records logged after the record ``mark`` (all of them if ``mark`` is gone or None)."""
    records = emu.requests.snapshot()
    for i in range(len(records) - 1, -1, -1):
        if records[i] is mark:
            return records[i + 1:]
    return records
