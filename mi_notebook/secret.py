"""A value that never shows itself: a bearer token, ``MSI_SECRET``, ``IDENTITY_HEADER``.

:class:`Secret` is the one wrapper for every secret the package holds, so each way an object can be
dumped meets the same rules: ``repr``, ``str`` and ``format`` say ``Secret(<hidden>)``;
``dataclasses.asdict`` and ``copy.deepcopy`` keep the wrapper itself (never the text); ``vars()`` has
nothing to show (no ``__dict__``). :meth:`Secret.reveal` is the one way to the value.

**Pickling drops the value.** A pickled ``Secret`` carries nothing: what arrives on the other side
is a :meth:`~Secret.withheld` secret, whose ``reveal()`` raises a
:class:`~mi_notebook.errors.HostConfigurationError` saying so. An object that holds host secrets
(a detection, a token source) can therefore travel between processes without them; the receiving
process reads its own host's secrets. (Tokens refuse pickling altogether; see ``AccessToken``.)

Example::

    >>> import copy, pickle
    >>> s = Secret("s3cr3t")
    >>> s, f"{s}", copy.deepcopy(s) is s, b"s3cr3t" in pickle.dumps(s)
    (Secret(<hidden>), 'Secret(<hidden>)', True, False)
    >>> pickle.loads(pickle.dumps(s)).reveal()
    Traceback (most recent call last):
    ...
    mi_notebook.errors.HostConfigurationError: This secret was left behind when the object holding it was pickled: secrets never travel between processes.
    What to do: Build the object again in this process (e.g. mi.connect()): it reads this host's own secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from typing import Any

from .errors import HostConfigurationError

__all__ = ["REDACTED", "Secret", "fingerprint", "redact_text"]

#: what stands where a secret was
REDACTED = "<redacted>"
# a JSON value that is a credential (a token, a refresh token, a client assertion), with or without its closing quote
_SECRET_VALUE = re.compile(r'("(?:access_token|refresh_token|id_token|client_assertion|client_secret)"\s*:\s*)"[^"]*"?')
# anything shaped like a JWT (whole, or its start after a cut), and a bearer credential in free text
_JWT_LIKE = re.compile(r"eyJ[\w-]*(?:\.[\w-]*)*")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}")
# the same in a form or a query string (a client assertion is POSTed as a form field)
_FORM_VALUE = re.compile(r"\b(access_token|refresh_token|id_token|client_assertion|client_secret)=[^&\s\"']+")

#: the key of every fingerprint, new in each process: a fingerprint cannot be tested against guesses
#: of a short secret anywhere else, and says nothing once the process is gone
_FINGERPRINT_KEY = os.urandom(32)


def fingerprint(*parts: str) -> str:
    """A keyed digest (HMAC-SHA-256, this process's key) of ``parts``: equal for equal parts in this
    process, and neither reversible nor testable against guesses outside it. Cache keys use it for
    host secrets.

    Example::

        >>> fingerprint("secret", "s3cr3t") == fingerprint("secret", "s3cr3t") != fingerprint("secret", "other")
        True
        >>> fingerprint("x")[:12], len(fingerprint("x"))
        ('hmac-sha256:', 44)
    """
    mac = hmac.new(_FINGERPRINT_KEY, "\0".join(parts).encode("utf-8", "surrogatepass"), hashlib.sha256)
    return "hmac-sha256:" + mac.hexdigest()[:32]


def redact_text(text: str, limit: int | None = None, *, one_line: bool = False) -> str:
    """``text`` with every token-like thing replaced by ``<redacted>``: the package's one redaction (error
    bodies, widget panels, CLI output all use it).

    Replaced: a JSON credential value (``"access_token": "..."`` and its kin, even cut short), the same
    as a form or query field (``client_assertion=...``), anything shaped like a JWT (a cut one too), and
    the credential after ``Bearer`` in free text. ``one_line``
    folds whitespace; ``limit`` cuts the result (with ``…``).

    Example::

        >>> redact_text('{"access_token": "opaque-value-123", "expires_on": "1"}')
        '{"access_token": "<redacted>", "expires_on": "1"}'
        >>> redact_text("sent Authorization: Bearer abcdefgh12345678 and eyJhbGciOi.eyJhdWQ")
        'sent Authorization: Bearer <redacted> and <redacted>'
    """
    if one_line:
        text = " ".join(text.split())
    text = _SECRET_VALUE.sub(r'\1"<redacted>"', text)
    text = _BEARER.sub(r"\1 <redacted>", text)
    text = _FORM_VALUE.sub(r"\1=<redacted>", text)
    text = _JWT_LIKE.sub(REDACTED, text)
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


class Secret:
    """A secret value: shows as ``Secret(<hidden>)`` everywhere; :meth:`reveal` is the way to it.

    Immutable (copies are the object itself); equal to another ``Secret`` with the same value;
    pickles without its value (see the module docstring).

    Example::

        >>> s = Secret("abc")
        >>> s, str(s), f"{s}", s.reveal(), s == Secret("abc")
        (Secret(<hidden>), 'Secret(<hidden>)', 'Secret(<hidden>)', 'abc', True)
    """

    __slots__ = ("_value",)
    _value: str | None

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"a Secret holds text, not {type(value).__name__}")
        object.__setattr__(self, "_value", value)

    @classmethod
    def withheld(cls) -> Secret:
        """A secret whose value was not carried (what unpickling gives): ``reveal()`` raises.

        Example::

            >>> Secret.withheld().is_withheld
            True
        """
        blank = object.__new__(cls)
        object.__setattr__(blank, "_value", None)
        return blank

    @property
    def is_withheld(self) -> bool:
        """Whether the value stayed behind (this secret came out of a pickle)."""
        return self._value is None

    @property
    def fingerprint(self) -> str:
        """A keyed digest of the value (:func:`fingerprint`), never the value (a withheld secret raises).

        Example::

            >>> Secret("abc").fingerprint == Secret("abc").fingerprint != Secret("abd").fingerprint
            True
        """
        return fingerprint("secret", self.reveal())

    def reveal(self) -> str:
        """The value itself, for the one header (or the one caller) that needs it.

        Example::

            >>> Secret("abc").reveal()
            'abc'
        """
        if self._value is None:
            raise HostConfigurationError(
                "This secret was left behind when the object holding it was pickled: secrets never travel "
                "between processes.",
                hint="Build the object again in this process (e.g. mi.connect()): it reads this host's own secrets.")
        return self._value

    def __repr__(self) -> str:
        return "Secret(<withheld>)" if self._value is None else "Secret(<hidden>)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return format(repr(self), spec)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value and self._value is not None

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a Secret is immutable")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (Secret.withheld, ())
