"""Tokens that are the signed-in *user's*, not a managed identity's: how to tell, and how it shows.

Azure ML compute instances with SSO on answer a request that names no identity with the user's own
token, and Cloud Shell never hands out anything else. Code written for a managed identity then acts
as the person who opened the notebook. So such a token is flagged loudly, twice:

* a :class:`UserTokenWarning` (``warnings.warn``), and
* the token itself is a :class:`UserAccessToken` (an ``AccessToken`` subclass: every ``AccessToken``
  surface still works) whose ``user_token_reason`` says why, whose repr and str say "user token",
  and which keeps that through the cache (``served_from_cache`` keeps the class).

:func:`~mi_notebook.claims._checks.user_token_evidence` (the same rule as the ``principal`` check of
``tok.claims.checks()``) decides from the claims alone.

Example::

    >>> user_token_evidence({"idtyp": "user", "upn": "ada@contoso.com"})
    "idtyp is 'user'"
    >>> user_token_evidence({"xms_mirid": "/subscriptions/s/.../userAssignedIdentities/id", "oid": "x"}) is None
    True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..claims import user_token_evidence
from ..errors import TokenDecodeError
from ..tokens import AccessToken

__all__ = ["UserAccessToken", "UserTokenWarning", "as_user_token"]



class UserTokenWarning(UserWarning):
    """A token endpoint returned the signed-in user's own token instead of a managed identity's.

    Example::

        >>> issubclass(UserTokenWarning, UserWarning)
        True
    """


def token_user_evidence(token: AccessToken) -> str | None:
    """:func:`user_token_evidence` for a token (``None`` for a token that is not a decodable JWT).

    Example::

        >>> token_user_evidence(AccessToken("opaque", resource="api://x", expires_on=1)) is None
        True
    """
    from ..claims import decode_unverified

    try:
        return user_token_evidence(decode_unverified(token).payload)
    except TokenDecodeError:
        return None


@dataclass(frozen=True, repr=False, eq=False, kw_only=True)
class UserAccessToken(AccessToken):
    """An ``AccessToken`` that is the signed-in user's, not a managed identity's (the marker).

    ``user_token_reason`` is the sentence to show (what happened, what to do); ``is_user_token`` is
    ``True`` (plain ``AccessToken`` objects have no such attribute: test with
    ``getattr(tok, "is_user_token", False)`` or ``isinstance(tok, UserAccessToken)``).

    Example::

        >>> tok = as_user_token(AccessToken("a.b.c", resource="api://x", expires_on=5, host="cloudshell"),
        ...                     "Cloud Shell hands out the signed-in user's token.")
        >>> tok.is_user_token, "user token" in repr(tok), tok.served_from_cache().is_user_token
        (True, True, True)
    """

    user_token_reason: str = ""

    @property
    def is_user_token(self) -> bool:
        """Always ``True``: this token acts as a person."""
        return True

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + ", user token: not a managed identity)"

    def __str__(self) -> str:
        return super().__str__() + " [USER TOKEN: the signed-in user's own token, not a managed identity's]"

    def _repr_html_(self) -> str:
        import html

        banner = (
            '<div style="color:#cf222e;font-weight:600">This is the signed-in user\'s own token, not a '
            f"managed identity's. {html.escape(self.user_token_reason)}</div>"
        )
        card = super()._repr_html_()
        cut = card.index("</div>") + len("</div>")  # after the title line
        return card[:cut] + banner + card[cut:]


def as_user_token(token: AccessToken, reason: str) -> UserAccessToken:
    """The same token, marked as the user's (claims already decoded are kept).

    Example::

        >>> as_user_token(AccessToken("a.b.c", resource="api://x", expires_on=5), "why").user_token_reason
        'why'
    """
    values = {f.name: getattr(token, f.name) for f in dataclasses.fields(token) if f.init and f.name != "_secret"}
    values["user_token_reason"] = reason
    marked = UserAccessToken(token.reveal(), **values)
    object.__setattr__(marked, "_claims_view", token._claims_view)
    return marked
