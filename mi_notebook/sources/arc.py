"""Azure Arc-enabled servers: ``IDENTITY_ENDPOINT`` + ``IMDS_ENDPOINT`` (the local ``himds`` agent).

The protocol (Learn: "Authenticate against Azure resources with Azure Arc-enabled servers";
azure-identity ``azure_arc.py``, MSAL ``_obtain_token_on_arc``):

1. ``GET $IDENTITY_ENDPOINT?api-version=2020-06-01&resource=<resource>`` with ``Metadata: true``;
   the agent answers **401** with ``WWW-Authenticate: Basic realm=<path of a key file>``.
2. The key file is checked before it is read: directly inside the key directory
   (``/var/opt/azcmagent/tokens`` on Linux, ``%PROGRAMDATA%\\AzureConnectedMachineAgent\\Tokens`` on
   Windows; a constructor parameter), a ``.key`` name, a regular file of at most 4096 bytes. Reading it
   needs membership of the ``himds`` group on Linux.
3. The same request again with ``Authorization: Basic <file contents>``.

One attempt in the timeline is the challenge and the authorised request together. A problem with the
challenge or the key file is a :class:`~mi_notebook.errors.HostConfigurationError` (not retried)
naming the header or the file; the key's contents are never shown, logged or kept.

**User-assigned identities** go as ``client_id``, ``object_id`` or ``msi_res_id`` (MSAL: Arc ignores
``mi_res_id`` and returns the system-assigned identity). Older agents ignore every selector and
silently return the system-assigned identity's token, so a requested identity must be *confirmed*:
azure-identity 1.27 and MSAL 1.39 require the answer to echo it (``client_id`` / ``object_id`` /
``msi_res_id``, or ``mi_res_id``). Here the evidence is the echo **and** the token's own claims
(``appid``/``azp``, ``oid``, ``xms_mirid``, the identity Entra ID actually issued it to): the token is
accepted when at least one of them names the requested identity and none names another; otherwise
it is refused with an :class:`~mi_notebook.errors.IdentityNotFoundError`. The claims settle the case
the echo alone cannot (an agent that echoes nothing but did honour the selector), and a contradiction
from either is enough to refuse.

**Retries** (ours, Arc documents none): :func:`~mi_notebook.sources._base.host_retry_policy`,
4 attempts, waits about 0.5, 1, 2 s.

Example::

    >>> import tempfile, pathlib
    >>> from mi_notebook.http import MockTransport
    >>> keys = pathlib.Path(tempfile.mkdtemp()); (keys / "abc.key").write_text("k3y")
    3
    >>> def agent(request):
    ...     if "Authorization" not in request.headers:
    ...         return 401, {"WWW-Authenticate": f"Basic realm={keys / 'abc.key'}"}, b""
    ...     return 200, {}, {"access_token": "a.b.c", "expires_on": "1800000000"}
    >>> mock = MockTransport(agent)
    >>> tok = ArcSource(key_dir=keys, transport=mock).request_token("arm")
    >>> tok.host, len(tok.timeline), len(mock.requests), mock.requests[1].headers["Authorization"] == "Basic k3y"
    ('arc', 1, 2, True)
"""

from __future__ import annotations

import dataclasses
import os
import stat
import sys
from collections.abc import Mapping
from typing import Any, NoReturn

from .. import errors
from ..clock import SYSTEM_CLOCK, Clock
from ..http import Answer, Request, Transport
from ..identity import Identity
from ..retry import RetryPolicy
from ..tokens import AccessToken
from ._base import DEFAULT_TIMEOUT, TokenSource
from ._settings import check_endpoint, endpoint_from, fingerprint

__all__ = ["API_VERSION", "DEFAULT_ENDPOINT", "MAX_KEY_SIZE", "ArcSource", "default_key_dir"]

API_VERSION = "2020-06-01"
#: where the agent listens when no variable says (MSAL uses it when it finds the himds binary)
DEFAULT_ENDPOINT = "http://localhost:40342/metadata/identity/oauth2/token"
MAX_KEY_SIZE = 4096
HIMDS_GROUP_FIX = "add this user to the himds group: sudo usermod -a -G himds $USER, then log in again"
_ECHO = {"client_id": ("client_id",), "object_id": ("object_id",), "resource_id": ("msi_res_id", "mi_res_id")}
_CLAIM = {"client_id": ("appid", "azp"), "object_id": ("oid",), "resource_id": ("xms_mirid",)}


def default_key_dir(platform: str = sys.platform, environ: Mapping[str, str] | None = None) -> str | None:
    """The agent's key directory on this platform (``None`` where Arc has none, or PROGRAMDATA is unset).

    Example::

        >>> default_key_dir("linux"), default_key_dir("darwin")
        ('/var/opt/azcmagent/tokens', None)
    """
    if platform.startswith("linux"):
        return "/var/opt/azcmagent/tokens"
    if platform.startswith("win"):
        program_data = (os.environ if environ is None else environ).get("PROGRAMDATA")
        return os.path.join(program_data, "AzureConnectedMachineAgent", "Tokens") if program_data else None
    return None


class ArcSource(TokenSource):
    """Tokens from the Azure Arc agent (``himds``), through its key-file challenge.

    ``endpoint`` is ``IDENTITY_ENDPOINT`` (default :data:`DEFAULT_ENDPOINT`); ``key_dir`` the only
    directory key files are read from (default :func:`default_key_dir`).

    Example::

        >>> ArcSource(key_dir="/tmp/keys")
        ArcSource(endpoint='http://localhost:40342/metadata/identity/oauth2/token', key_dir='/tmp/keys', timeout=(2, 10), retry='arc')
    """

    host = "arc"
    service = "Azure Arc agent"
    unreachable_hint = ("The Arc agent (himds) is not answering: check it with `azcmagent show` and "
                        "`systemctl status himdsd`.")
    auth_hint = ("The Arc agent refused the key file's contents: keys are made per request, so try again; if it "
                 "persists, check the agent with `azcmagent show`.")
    identity_hint = ("Check that the identity is assigned to this Arc-enabled server, and that the Connected "
                     "Machine agent is recent enough for user-assigned identities (`azcmagent version`).")

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, *, key_dir: str | os.PathLike[str] | None = None,
                 retry: RetryPolicy | None = None, clock: Clock = SYSTEM_CLOCK,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT, transport: Transport | None = None) -> None:
        super().__init__(endpoint, retry=retry, clock=clock, timeout=timeout, transport=transport)
        self.key_dir = os.fspath(key_dir) if key_dir is not None else default_key_dir()

    @property
    def fingerprint(self) -> str | None:
        """A keyed digest of the key directory (the key itself is read per request and never kept)."""
        return fingerprint("key_dir", self.key_dir or "")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], **options: Any) -> ArcSource:
        """Built from ``IDENTITY_ENDPOINT`` (``IMDS_ENDPOINT``, if set, must be a URL too); ``options``
        (``key_dir``, ``retry``, ``clock``, ``timeout``, ``transport``) go to the constructor.

        Example::

            >>> ArcSource.from_environment({"IDENTITY_ENDPOINT": "http://localhost:40342/metadata/identity/oauth2/token",
            ...                             "IMDS_ENDPOINT": "http://localhost:40342"}, key_dir="/k").endpoint
            'http://localhost:40342/metadata/identity/oauth2/token'
        """
        endpoint = endpoint_from(environ, "IDENTITY_ENDPOINT")
        if environ.get("IMDS_ENDPOINT"):
            check_endpoint(environ["IMDS_ENDPOINT"], "IMDS_ENDPOINT")
        return cls(endpoint, **options)

    # --- the protocol ---------------------------------------------------------------------------------
    def _request(self, resource: str, identity: Identity) -> Request:
        params = [("api-version", API_VERSION), ("resource", resource), *identity.query_params().items()]
        return Request("GET", self.endpoint, params=tuple(params), timeout=self.timeout,
                       headers={"Metadata": "true", "Accept": "application/json"})

    def _exchange(self, request: Request) -> Answer:
        challenge = super()._exchange(request)
        if challenge.status != 401:
            return challenge
        key = self.read_key(self._realm(challenge), challenge)
        authorised = dataclasses.replace(request, headers={**request.headers, "Authorization": f"Basic {key}"})
        return super()._exchange(authorised)

    def _realm(self, challenge: Answer) -> str:
        header = challenge.headers.get("WWW-Authenticate")
        scheme, _, rest = (header or "").strip().partition(" ")
        rest = rest.strip()
        if scheme.lower() != "basic" or not rest.lower().startswith("realm="):
            shown = "no WWW-Authenticate header" if not header else f"WWW-Authenticate: {header[:200]!r}"
            self._refuse(f"The Arc agent answered 401 with {shown}: a Basic realm=<key file path> was expected.",
                         "Check that IDENTITY_ENDPOINT is the Arc agent's (http://localhost:40342/...) and that the "
                         "agent is healthy (`azcmagent show`).", challenge)
        path = rest[len("realm="):].strip().strip('"')
        if not path:
            self._refuse("The Arc agent's WWW-Authenticate header has an empty realm (no key file path).",
                         "Check the agent with `azcmagent show`.", challenge)
        return path

    def read_key(self, path: str, challenge: Answer | None = None) -> str:
        """The contents of the key file the agent named, after every check (see the module docstring).

        Example::

            >>> ArcSource(key_dir="/var/opt/azcmagent/tokens").read_key("/etc/passwd")
            Traceback (most recent call last):
            ...
            mi_notebook.errors.HostConfigurationError: The Arc agent named the key file '/etc/passwd', which is not directly inside the key directory /var/opt/azcmagent/tokens: refused.
            What to do: A genuine agent only names files in its key directory; check that IDENTITY_ENDPOINT is the Arc agent's, or pass key_dir= if the agent keeps its keys elsewhere.
        """
        shown = _shown(path)
        if self.key_dir is None:
            self._refuse(f"The Arc agent named the key file {shown}, but this platform ({sys.platform}) has no Arc "
                         "key directory.", "Pass key_dir= (Arc-enabled servers run Linux or Windows).", challenge)
        try:
            data = self._read_checked(path, shown, challenge)
        except errors.HostConfigurationError:
            raise
        except PermissionError:
            self._refuse(f"This user may not read the Arc key file {shown} (permission denied).",
                         f"{HIMDS_GROUP_FIX[0].upper()}{HIMDS_GROUP_FIX[1:]} (restart the Jupyter server from that new login).",
                         challenge)
        except FileNotFoundError:
            self._refuse(f"The Arc agent named the key file {shown}, which does not exist.",
                         "Try again (keys are made per request); if it persists, check `azcmagent show`.", challenge)
        except (OSError, ValueError) as exc:  # a NUL byte, a name or path too long, a symlink loop, bad text...
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            self._refuse(f"The Arc agent named the key file {shown}, which cannot be used as a path here ({why}): "
                         "refused, no file was read.",
                         "A genuine agent names a plain file in its key directory; check that IDENTITY_ENDPOINT is the "
                         "Arc agent's (`azcmagent show`).", challenge)
        key = data.decode("utf-8", errors="replace").strip()
        if len(data) > MAX_KEY_SIZE or not key or any(ch in key for ch in "\r\n\0") or not key.isascii():
            del data, key  # the raising frame keeps no copy of the key
            self._refuse(f"The Arc key file {shown} is empty, larger than {MAX_KEY_SIZE} bytes, not one line of "
                         "text or holds a character outside ASCII (contents not shown): refused.",
                         "Check the agent with `azcmagent show`.", challenge)
        return key

    def _read_checked(self, path: str, shown: str, challenge: Answer | None) -> bytes:
        """The bytes of the key file ``path`` after the path checks (``OSError``/``ValueError`` pass up)."""
        assert self.key_dir is not None
        real, real_dir = os.path.realpath(path), os.path.realpath(self.key_dir)
        if os.path.normcase(os.path.dirname(real)) != os.path.normcase(real_dir):
            self._refuse(f"The Arc agent named the key file {shown}, which is not directly inside the key directory "
                         f"{self.key_dir}: refused.",
                         "A genuine agent only names files in its key directory; check that IDENTITY_ENDPOINT is the "
                         "Arc agent's, or pass key_dir= if the agent keeps its keys elsewhere.", challenge)
        if not real.lower().endswith(".key"):
            self._refuse(f"The Arc agent named {shown}, which is not a .key file: refused.",
                         "Check that IDENTITY_ENDPOINT is the Arc agent's (`azcmagent show`).", challenge)
        info = os.stat(real)
        if not stat.S_ISREG(info.st_mode):
            self._refuse(f"The Arc key file {shown} is not a regular file: refused.",
                         "Check the agent with `azcmagent show`.", challenge)
        if info.st_size > MAX_KEY_SIZE:
            self._refuse(f"The Arc key file {shown} is {info.st_size} bytes, more than the {MAX_KEY_SIZE} a key "
                         "file may have: refused.", "Check the agent with `azcmagent show`.", challenge)
        with open(real, "rb") as handle:
            return handle.read(MAX_KEY_SIZE + 1)

    def _refuse(self, message: str, hint: str, challenge: Answer | None) -> NoReturn:
        raise errors.HostConfigurationError(
            message, hint=hint, endpoint=self.endpoint, status=challenge.status if challenge else None,
            request_id=challenge.request_id if challenge else None)

    def _check(self, token: AccessToken, document: dict[str, Any], identity: Identity) -> None:
        if identity.selector is None:
            return
        name, wanted = identity.selector
        evidence = [(f"the answer's {key}", document.get(key)) for key in _ECHO[name] if document.get(key)][:1]
        claims = _claims(token)
        evidence += [(f"the token's {key} claim", claims[key]) for key in _CLAIM[name] if claims.get(key)][:1]
        against = [f"{where} is {value!r}" for where, value in evidence if str(value).lower() != wanted.lower()]
        if evidence and not against:
            return
        found = "; ".join(against) if against else "neither the answer nor the token names any identity"
        raise errors.IdentityNotFoundError(
            f"The Arc agent did not confirm the requested {identity} ({found}). The agent likely does not support "
            "user-assigned identities and returned the system-assigned identity's token: refused.",
            status=200, endpoint=self.endpoint, hint=self.identity_hint)

    def _repr_extra(self) -> str:
        return f", key_dir={self.key_dir!r}"


def _shown(path: str) -> str:
    """The path as it goes into a message: quoted, control characters escaped, cut when long."""
    text = repr(path)
    return text if len(text) <= 200 else text[:160] + "..." + text[-30:]


def _claims(token: AccessToken) -> dict[str, Any]:
    from ..claims import decode_unverified

    try:
        return dict(decode_unverified(token).payload)
    except errors.TokenDecodeError:
        return {}
