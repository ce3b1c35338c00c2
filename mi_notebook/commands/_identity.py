"""What the CLI says about whose token it got: the claims' verdict, and the fix in CLI terms.

``token`` and ``doctor`` label every token with :func:`mi_notebook.claims.token_identity` (never with
what was asked) and ask :func:`identity_problem` whether that is a failure: a person's own token on
Azure ML (the SSO trap: no identity named) or on any managed-identity endpoint is one, with the fix
as flags and variables; on Cloud Shell, where nothing else is ever handed out, it is a warning.

Example::

    >>> from mi_notebook.claims import token_identity
    >>> from mi_notebook.identity import Identity
    >>> found = identity_problem(token_identity({"idtyp": "user", "upn": "ada@contoso.com"}), "azureml",
    ...                          Identity.system())
    >>> found.severity, found.message.split(":")[0]
    ('problem', "YOUR OWN user token (ada@contoso.com), not the compute's managed identity")
    >>> "--client-id <guid>" in found.fix and "Azure ML Studio -> Compute" in found.fix
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # pragma: no cover
    from ..claims import TokenIdentity
    from ..identity import Identity

__all__ = ["AZUREML_IDENTITY_WHERE", "CliProblem", "identity_problem"]

#: where an Azure ML compute's identity (and its client id) is shown
AZUREML_IDENTITY_WHERE = "Azure ML Studio -> Compute -> the instance -> Managed identity (its client id)"


@dataclass(frozen=True)
class CliProblem:
    """One finding for the command line: ``severity`` (``problem`` fails the command, ``warning`` does
    not), what happened (``message``) and what to do (``fix``, in flags and variables).

    Example::

        >>> CliProblem("warning", "Cloud Shell hands out your own token.").lines()
        ['warning: Cloud Shell hands out your own token.']
    """

    severity: Literal["problem", "warning"]
    message: str
    fix: str | None = None

    def lines(self) -> list[str]:
        """The stderr lines: ``mi-notebook: problem: ...`` and ``fix: ...``, or one ``warning: ...`` line."""
        if self.severity == "warning":
            return [f"warning: {self.message}" + (f" {self.fix}" if self.fix else "")]
        return [f"mi-notebook: problem: {self.message}"] + ([f"fix: {self.fix}"] if self.fix else [])

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``-o json``.

        Example::

            >>> CliProblem("problem", "m", "f").to_dict()
            {'severity': 'problem', 'message': 'm', 'fix': 'f'}
        """
        return {"severity": self.severity, "message": self.message, "fix": self.fix}


def identity_problem(who: TokenIdentity, host: str, asked: Identity, *, command: str = "mi-notebook token arm",
                     endpoint: str | None = None) -> CliProblem | None:
    """Whether the token ``who`` labels is a failure on ``host`` (``vm``, ``azureml``, ``cloudshell``...),
    given the identity the request named (``asked``); ``None`` when it is a managed identity's.

    ``command`` is how the fix spells the command to repeat.

    Example::

        >>> from mi_notebook.claims import TokenIdentity
        >>> from mi_notebook.identity import Identity
        >>> identity_problem(TokenIdentity("system-assigned"), "azureml", Identity.system()) is None
        True
        >>> identity_problem(TokenIdentity("user", name="ada@contoso.com"), "cloudshell", Identity.system()).severity
        'warning'
    """
    if not who.is_user_token:
        return None
    whose = f"YOUR OWN user token ({who.name or 'the signed-in user'})"
    if host == "cloudshell":
        return CliProblem("warning", f"Cloud Shell hands out only {whose}, never a managed identity's: anything "
                                     "done with it acts as you.")
    if host == "azureml":
        sent = (f"clientid={asked.client_id} was sent, yet the compute answered with the signed-in user's token"
                if asked.client_id else
                "no identity was named (DEFAULT_IDENTITY_CLIENT_ID is not set), so the compute answered with "
                "the signed-in (SSO) user's token")
        check = (f" Check that {asked.client_id} is the client id of an identity assigned to this compute: "
                 if asked.client_id else " ")
        return CliProblem(
            "problem",
            f"{whose}, not the compute's managed identity: {sent}; anything done with it acts as you.",
            f"name the compute's identity:{check}`{command} --client-id <guid>`, or `export "
            f"DEFAULT_IDENTITY_CLIENT_ID=<guid>` for every command and notebook. Find the id in "
            f"{AZUREML_IDENTITY_WHERE}.")
    where = f" at {endpoint}" if endpoint else ""
    return CliProblem(
        "problem",
        f"the endpoint{where} answered with {whose}, not a managed identity's: anything done with it acts as you.",
        "check that the endpoint is this machine's managed-identity endpoint (`mi-notebook doctor` shows which "
        "one is used and why).")
