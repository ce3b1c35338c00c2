"""The projected service-account token of an AKS pod (``AZURE_FEDERATED_TOKEN_FILE``), read safely.

The kubelet writes a fresh token into the file at about 80% of the old one's lifetime (Kubernetes API
reference, ``ServiceAccountTokenProjection.expirationSeconds``); the old one stays valid only until
its ``exp``. A client that keeps a stale read sends an expired assertion and Entra ID answers
AADSTS700024 (azure-sdk-for-python#44488: azure-identity re-reads the file only every 600 s;
azure-sdk-for-rust#1739; azure-workload-identity#693). So :func:`read_assertion` reads the file
**every time** it is called (it is a few hundred bytes), and refuses, before anything is sent, an
assertion whose ``exp`` has passed by the caller's clock: a file the kubelet has stopped rotating is
then a local, explained error instead of Entra's.

The contents are the pod's credential: they come back as a :class:`~mi_notebook.secret.Secret`,
and no error, repr or report built here contains them. :func:`inspect_token_file` is what
``mi-notebook doctor`` shows: readability and the claims that must match the federated identity
credential (``iss``, ``sub``, ``aud``) and the time window, never the token.

Example::

    >>> import jwt, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "azure-identity-token")
    >>> claims = {"iss": "https://oidc.example/abc/", "sub": "system:serviceaccount:jhub:jupyter-notebook",
    ...           "aud": ["api://AzureADTokenExchange"], "iat": 1000, "nbf": 1000, "exp": 4600}
    >>> with open(path, "w") as fh:
    ...     _ = fh.write(jwt.encode(claims, "k" * 32))
    >>> read_assertion(path, now=2000).exp
    4600
    >>> read_assertion(path, now=5000)
    Traceback (most recent call last):
    ...
    mi_notebook.sources._entra.AssertionTimeError: The service-account token in AZURE_FEDERATED_TOKEN_FILE expired 6 min 40 s ago (exp 4600), and the file holds no newer one: it was not sent (Entra ID would refuse it with AADSTS700024).
    What to do: The kubelet rotates this file at about 80% of the token's lifetime; a file it no longer rotates means the pod's projected volume is broken: check `kubectl describe pod` for volume or token-request errors, and restart the pod.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Any

from ..errors import HostConfigurationError, TokenDecodeError
from ..secret import Secret
from ..timefmt import format_duration
from ._entra import AssertionTimeError

__all__ = ["DEFAULT_AUDIENCE", "MAX_FILE_SIZE", "Assertion", "TokenFileReport", "inspect_token_file",
           "read_assertion"]

#: the audience the azure-workload-identity webhook projects (``DefaultAudience`` in its ``consts.go``)
DEFAULT_AUDIENCE = "api://AzureADTokenExchange"
#: a projected token is about a kilobyte; anything much larger is not one (and is not read whole)
MAX_FILE_SIZE = 64 * 1024
_VARIABLE = "AZURE_FEDERATED_TOKEN_FILE"
_ROTATION_FIX = ("The kubelet rotates this file at about 80% of the token's lifetime; a file it no longer rotates "
                 "means the pod's projected volume is broken: check `kubectl describe pod` for volume or "
                 "token-request errors, and restart the pod.")


@dataclass(frozen=True)
class Assertion:
    """One read of the token file: the assertion (a :class:`~mi_notebook.secret.Secret`) and the claims
    that say where it may be used (``iss``, ``sub``, ``aud``, ``exp``, ``nbf``; none of them secret).

    Example::

        >>> a = Assertion(Secret("h.p.s"), iss="https://oidc.example/x/", sub="system:serviceaccount:a:b",
        ...               aud=("api://AzureADTokenExchange",), exp=4600, nbf=1000)
        >>> a, a.expires_in(4000)
        (Assertion(sub='system:serviceaccount:a:b', exp=4600), 600.0)
    """

    value: Secret = field(repr=False)
    iss: str | None
    sub: str | None
    aud: tuple[str, ...]
    exp: int | None
    nbf: int | None

    def expires_in(self, now: float) -> float | None:
        """Seconds until ``exp`` by ``now`` (negative once past; ``None`` without an ``exp``)."""
        return None if self.exp is None else float(self.exp - now)

    def __repr__(self) -> str:
        return f"Assertion(sub={self.sub!r}, exp={self.exp!r})"


def _fail(path: str, problem: str, fix: str) -> HostConfigurationError:
    return HostConfigurationError(f"{_VARIABLE}={path[:200]!r} {problem}.", hint=fix)


def _read_text(path: str) -> str:
    """The file's text (stripped), or a HostConfigurationError naming the file and the fix (never its contents)."""
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise _fail(path, "is not a regular file", "Point it at the projected token file the webhook "
                            "mounts (the webhook sets it; do not set it by hand).")
            data = handle.read(MAX_FILE_SIZE + 1)
    except FileNotFoundError:
        raise _fail(path, "does not exist", "The workload-identity webhook mounts the token there when the pod is "
                    "labelled azure.workload.identity/use: \"true\" and its service account is annotated with "
                    "azure.workload.identity/client-id; check the pod's volumes (kubectl describe pod).") from None
    except PermissionError:
        raise _fail(path, "cannot be read by this user", "Projected tokens are mode 0644 from Kubernetes 1.19; on "
                    "older clusters set the pod's securityContext.fsGroup (e.g. 65534) so that a non-root user "
                    "can read it.") from None
    except IsADirectoryError:
        raise _fail(path, "is a directory, not the token file", "Set it to the file itself (the webhook's value "
                    "ends in azure-identity-token).") from None
    except OSError as exc:
        raise _fail(path, f"could not be read ({type(exc).__name__}: {exc.strerror or 'I/O error'})",
                    "Check the pod's projected volume (kubectl describe pod).") from None
    if len(data) > MAX_FILE_SIZE:
        raise _fail(path, f"is larger than {MAX_FILE_SIZE // 1024} KiB: it is not a service-account token",
                    "Point it at the projected token file the webhook mounts.")
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise _fail(path, "holds bytes that are not ASCII: it is not a service-account token (contents not shown)",
                    "Point it at the projected token file the webhook mounts.") from None
    if not text:
        raise _fail(path, "is empty", "The kubelet writes the token when the pod starts: restart the pod if it "
                    "stays empty.")
    if any(ch.isspace() for ch in text):
        raise _fail(path, "holds more than one line or word: it is not one service-account token (contents not "
                    "shown)", "Point it at the projected token file the webhook mounts.")
    return text


def _claims(path: str, text: str) -> dict[str, Any]:
    from ..claims import decode_unverified

    try:
        return dict(decode_unverified(text).payload)
    except TokenDecodeError as exc:
        raise _fail(path, f"does not hold a JWT ({exc.message.rstrip('.')}; contents not shown)",
                    "Point it at the projected service-account token the webhook mounts.") from None


def _number(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def read_assertion(path: str, *, now: float) -> Assertion:
    """Read ``path`` now (never a cached copy) and return its assertion; refuse one whose ``exp`` is past.

    ``now`` is epoch seconds by the caller's clock. A missing, unreadable, empty or non-JWT file is a
    :class:`~mi_notebook.errors.HostConfigurationError`; an expired assertion an
    :class:`~mi_notebook.sources.AssertionTimeError` (no AADSTS code: Entra ID was not asked). Neither
    contains the file's contents.

    Example::

        >>> read_assertion("/nonexistent/azure-identity-token", now=0)
        Traceback (most recent call last):
        ...
        mi_notebook.errors.HostConfigurationError: AZURE_FEDERATED_TOKEN_FILE='/nonexistent/azure-identity-token' does not exist.
        What to do: The workload-identity webhook mounts the token there when the pod is labelled azure.workload.identity/use: "true" and its service account is annotated with azure.workload.identity/client-id; check the pod's volumes (kubectl describe pod).
    """
    text = _read_text(path)
    payload = _claims(path, text)
    aud = payload.get("aud")
    audiences = (aud,) if isinstance(aud, str) else tuple(a for a in aud if isinstance(a, str)) if isinstance(
        aud, list) else ()
    iss, sub = payload.get("iss"), payload.get("sub")
    found = Assertion(Secret(text), iss if isinstance(iss, str) else None, sub if isinstance(sub, str) else None,
                      audiences, _number(payload.get("exp")), _number(payload.get("nbf")))
    del text
    if found.exp is not None and found.exp <= now:
        raise AssertionTimeError(
            f"The service-account token in {_VARIABLE} expired {format_duration(now - found.exp)} ago (exp "
            f"{found.exp}), and the file holds no newer one: it was not sent (Entra ID would refuse it with "
            "AADSTS700024).", hint=_ROTATION_FIX)
    return found


@dataclass(frozen=True)
class TokenFileReport:
    """What ``mi-notebook doctor`` says about the token file: ``lines`` (facts, never the token) and
    ``problems`` (``(message, fix)`` pairs).

    Example::

        >>> report = inspect_token_file("/nonexistent/azure-identity-token", now=0)
        >>> report.ok, report.problems[0][0]
        (False, "AZURE_FEDERATED_TOKEN_FILE='/nonexistent/azure-identity-token' does not exist.")
    """

    lines: tuple[str, ...]
    problems: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems


def inspect_token_file(path: str, *, now: float, audience: str = DEFAULT_AUDIENCE) -> TokenFileReport:
    """Check the token file at ``path`` as Entra ID will: readable, a JWT, ``aud`` holding ``audience``,
    ``sub`` shaped ``system:serviceaccount:NAMESPACE:NAME``, the time window around ``now``. The
    contents are never part of the report; ``iss`` and ``sub`` are (they are what the federated
    identity credential must match, character for character).

    Example::

        >>> import jwt, os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "azure-identity-token")
        >>> with open(path, "w") as fh:
        ...     _ = fh.write(jwt.encode({"iss": "https://oidc.example/x", "sub": "system:serviceaccount:jhub:nb",
        ...                              "aud": ["api://AzureADTokenExchange"], "nbf": 0, "exp": 3600}, "k" * 32))
        >>> report = inspect_token_file(path, now=600)
        >>> report.ok, [line.split(":")[0] for line in report.lines]
        (True, ['file', 'issuer (iss)', 'subject (sub)', 'audience (aud)', 'valid'])
        >>> [line for line in report.lines if line.startswith("issuer")][0]
        "issuer (iss): 'https://oidc.example/x' (no trailing '/'; the federated credential's issuer must match it exactly)"
    """
    try:
        text = _read_text(path)
        payload = _claims(path, text)
        info = os.stat(path)
    except HostConfigurationError as exc:
        return TokenFileReport((f"file: {path} (not usable)",), ((exc.message, exc.hint),))
    except OSError as exc:  # gone between the read and the stat: the kubelet swapped it
        return TokenFileReport((f"file: {path} (not usable)",), ((f"{path}: {exc.strerror}", "run it again"),))
    del text
    problems: list[tuple[str, str]] = []
    lines = [f"file: {path} (readable, mode {stat.S_IMODE(info.st_mode):04o}, {info.st_size} bytes, "
             f"changed {format_duration(max(now - info.st_mtime, 0))} ago; contents not shown)"]
    iss, sub, aud = payload.get("iss"), payload.get("sub"), payload.get("aud")
    slash = "ends with '/'" if isinstance(iss, str) and iss.endswith("/") else "no trailing '/'"
    lines.append(f"issuer (iss): {iss!r} ({slash}; the federated credential's issuer must match it exactly)")
    parts = sub.split(":") if isinstance(sub, str) else []
    lines.append(f"subject (sub): {sub!r} (the federated credential's subject must match it, case included)")
    if len(parts) != 4 or parts[:2] != ["system", "serviceaccount"]:
        problems.append((f"the token's subject {sub!r} is not system:serviceaccount:NAMESPACE:NAME",
                         "the file is not a Kubernetes service-account token; check AZURE_FEDERATED_TOKEN_FILE"))
    audiences = [aud] if isinstance(aud, str) else list(aud) if isinstance(aud, list) else []
    lines.append(f"audience (aud): {', '.join(map(str, audiences)) or '(none)'}")
    if audience not in audiences:
        problems.append((f"the token's audience is not {audience}",
                         f"the federated credential's audience must be one of the token's ({', '.join(map(str, audiences))}); "
                         f"the webhook's default is {audience}"))
    exp, nbf = _number(payload.get("exp")), _number(payload.get("nbf"))
    if exp is None:
        problems.append(("the token has no exp", "the file is not a projected service-account token"))
    elif exp <= now:
        problems.append((f"the token in the file expired {format_duration(now - exp)} ago (exp {exp}): the kubelet "
                         "has not rotated it", _ROTATION_FIX))
        lines.append(f"valid: NO, expired {format_duration(now - exp)} ago")
    else:
        since = f"from {format_duration(now - nbf)} ago " if nbf is not None and nbf <= now else ""
        lines.append(f"valid: {since}for {format_duration(exp - now)} more (exp {exp}); mi-notebook reads the file "
                     "again for every token request")
    if nbf is not None and nbf > now + 60:
        problems.append((f"the token is valid only from {format_duration(nbf - now)} from now: this clock is behind "
                         "the cluster's", "sync this machine's clock (NTP)"))
    return TokenFileReport(tuple(lines), tuple(problems))
