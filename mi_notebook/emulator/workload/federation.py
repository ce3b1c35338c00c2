"""Federated identity credentials, and how Entra ID matches a presented assertion against them.

A federated identity credential on a user-assigned identity says which external tokens may stand in
for it: an ``issuer`` (compared exactly: the AKS issuer ends with ``/`` and a credential without it
never matches), a ``subject`` (compared exactly, letter case included since Entra's 2024-2025
change) and ``audiences``. :func:`match_assertion` answers with the credential that matches or the
refusal Entra gives: with ``era="current"`` AADSTS700211 (no credential with that issuer), 700213
(none with that subject), 7002138 (the subject matches only when letter case is ignored), 70021 (the
audience; Entra's own audience code is not confirmed); with ``era="2022"`` AADSTS70021 for all of them,
naming the assertion's issuer, subject and audience. An identity without any credential gets 70025.

Example::

    >>> fic = FederatedCredential("notebook", "cid", "https://oidc.example/x/", "system:serviceaccount:jhub:nb")
    >>> match_assertion([fic], issuer="https://oidc.example/x/", subject="system:serviceaccount:jhub:nb",
    ...                 audiences=["api://AzureADTokenExchange"], client_id="cid", now=0) is fic
    True
    >>> match_assertion([fic], issuer="https://oidc.example/x", subject="system:serviceaccount:jhub:nb",
    ...                 audiences=["api://AzureADTokenExchange"], client_id="cid", now=0).code
    700211
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .aadsts import WIF_DOC, WIF_DOC_2022
from .options import DEFAULT_AUDIENCE

__all__ = ["FederatedCredential", "Refusal", "match_assertion"]

BREAKING_CHANGE = "https://learn.microsoft.com/en-us/entra/identity-platform/reference-breaking-changes#august-2024"


@dataclass(frozen=True)
class FederatedCredential:
    """One federated identity credential of the identity whose client id is ``client_id``.

    ``created_at``: when it was added, by the emulator's clock (a credential takes effect
    ``propagation`` seconds later, see :func:`match_assertion`).

    Example::

        >>> FederatedCredential("n", "cid", "https://i/", "s").audiences
        ('api://AzureADTokenExchange',)
    """

    name: str
    client_id: str
    issuer: str
    subject: str
    audiences: tuple[str, ...] = (DEFAULT_AUDIENCE,)
    created_at: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "client_id": self.client_id, "issuer": self.issuer, "subject": self.subject,
                "audiences": list(self.audiences), "created_at": self.created_at}


@dataclass(frozen=True)
class Refusal:
    """Entra's refusal: ``code`` (AADSTS) and ``sentence`` (the description before the trace lines).

    Example::

        >>> Refusal(70021, "No matching federated identity record found for presented assertion.").code
        70021
    """

    code: int
    sentence: str


def match_assertion(credentials: Iterable[FederatedCredential], *, issuer: str, subject: str,
                    audiences: Sequence[str], client_id: str, now: float, propagation: float = 0.0,
                    era: str = "current", identity_name: str = "") -> FederatedCredential | Refusal:
    """The credential of ``client_id`` matching the assertion's ``issuer``, ``subject`` and ``audiences``.

    Credentials created less than ``propagation`` seconds before ``now`` are not seen yet. ``era``:
    ``"current"`` or ``"2022"`` (which codes and texts, see the module's docstring).

    Example::

        >>> fic = FederatedCredential("nb", "cid", "https://i/", "system:serviceaccount:jhub:nb")
        >>> wrong_case = match_assertion([fic], issuer="https://i/", subject="system:serviceaccount:jhub:NB",
        ...                              audiences=["api://AzureADTokenExchange"], client_id="cid", now=0)
        >>> wrong_case.code, wrong_case.sentence.split(". ")[1]
        (7002138, 'The subject matches with case-insensitive comparison, but not with case-sensitive comparison')
        >>> match_assertion([fic], issuer="https://i", subject="x", audiences=["a"], client_id="cid", now=0,
        ...                 era="2022").sentence.split(". ")[:3]
        ['No matching federated identity record found for presented assertion', "Assertion Issuer: 'https://i'", "Assertion Subject: 'x'"]
    """
    mine = [c for c in credentials if c.client_id.lower() == client_id.lower()]
    if not mine:
        return Refusal(70025, f"The client '{client_id}'({identity_name or client_id}) has no configured federated "
                       "identity credentials.")
    seen = [c for c in mine if c.created_at + propagation <= now]
    audience_text = ",".join(audiences)
    combined = Refusal(70021, "No matching federated identity record found for presented assertion. Assertion "
                       f"Issuer: '{issuer}'. Assertion Subject: '{subject}'. Assertion Audience: '{audience_text}'. "
                       f"{WIF_DOC_2022}")
    by_issuer = [c for c in seen if c.issuer == issuer]
    if not by_issuer:
        return combined if era == "2022" else Refusal(
            700211, f"No matching federated identity record found for presented assertion issuer '{issuer}'. "
            "Please check your federated identity credential Subject, Audience and Issuer against the presented "
            f"assertion. {WIF_DOC_2022}")
    by_subject = [c for c in by_issuer if c.subject == subject]
    if not by_subject:
        if era == "2022":
            return combined
        if any(c.subject.lower() == subject.lower() for c in by_issuer):
            return Refusal(7002138, f"No matching federated identity record found for presented assertion subject "
                           f"'{subject}'. The subject matches with case-insensitive comparison, but not with "
                           "case-sensitive comparison. Check your federated identity credential Subject, Audience "
                           f"and Issuer against the presented assertion. See documentation at: {WIF_DOC}. See "
                           f"breaking change notification and remediation at: {BREAKING_CHANGE}.")
        return Refusal(700213, f"No matching federated identity record found for presented assertion subject "
                       f"'{subject}'. Check your federated identity credential Subject, Audience and Issuer against "
                       f"the presented assertion. {WIF_DOC}")
    for credential in by_subject:
        if any(a in credential.audiences for a in audiences):
            return credential
    return combined  # no audience-specific code is confirmed in public captures
