"""Decode an access token without verifying it, and look at it: the :class:`Claims` view.

A notebook usually wants to *look* at a token it just got from IMDS, so :func:`decode_unverified` reads header
and payload (strictly: every malformed part is named) and every view says the signature was not
verified. Verifying is :func:`mi_notebook.jwks.decode` (``mi.decode``), which returns the same view.

A :class:`Claims` never holds the raw token: only the decoded header and payload, whether (and
how) the signature was verified, the token's fingerprint and the context of the request
(resource, identity, ``expires_on``) when it was decoded from an ``AccessToken``. What each claim
means is :mod:`mi_notebook.claims`; the checks are :mod:`mi_notebook.claims`.

Example::

    >>> import jwt
    >>> raw = jwt.encode({"aud": "https://management.azure.com/", "exp": 1767225600, "ver": "1.0"}, "k" * 32)
    >>> claims = decode_unverified(raw)
    >>> claims["aud"], claims.verified
    ('https://management.azure.com/', False)
    >>> [c.status for c in claims.checks(resource="arm", now=1767222000)][:3]
    ['skipped', 'ok', 'skipped']
"""

from __future__ import annotations

from ._checks import (
    CHECK_STATUSES,
    CHECKS_COLUMNS,
    EXPIRING_SOON,
    Check,
    IdentityClaims,
    check_audience,
    check_expires_on,
    check_identity,
    check_principal,
    check_signature,
    check_validity,
    checks_frame,
    requested_resource,
    user_token_evidence,
    worst,
)
from ._decode import (
    CLAIMS_COLUMNS,
    Claims,
    decode,
    decode_unverified,
    token_text,
)
from ._glossary import (
    CLAIM_MEANINGS,
    HEADER_MEANINGS,
    MIRID_KINDS,
    TIME_CLAIMS,
    UNKNOWN_CLAIM,
    UNKNOWN_HEADER,
    VALUE_NOTES,
    explain_claim,
    explain_header,
    mirid_kind,
)
from ._provenance import EMULATOR_CLAIM, TokenIdentity, emulator_evidence, token_identity

__all__ = [
    "CHECKS_COLUMNS",
    "CHECK_STATUSES",
    "CLAIMS_COLUMNS",
    "CLAIM_MEANINGS",
    "EMULATOR_CLAIM",
    "Check",
    "Claims",
    "EXPIRING_SOON",
    "HEADER_MEANINGS",
    "IdentityClaims",
    "MIRID_KINDS",
    "TIME_CLAIMS",
    "TokenIdentity",
    "UNKNOWN_CLAIM",
    "UNKNOWN_HEADER",
    "VALUE_NOTES",
    "check_audience",
    "check_expires_on",
    "check_identity",
    "check_principal",
    "check_signature",
    "check_validity",
    "checks_frame",
    "decode",
    "decode_unverified",
    "emulator_evidence",
    "explain_claim",
    "explain_header",
    "mirid_kind",
    "requested_resource",
    "token_identity",
    "token_text",
    "user_token_evidence",
    "worst",
]
