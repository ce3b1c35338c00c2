"""The pod the ``workload`` profile plays: Entra ID on HTTPS, the cluster, the token file, the federation.

:class:`WorkloadPod` is what ``Emulator(profile="workload")`` holds as ``emu.workload``. At start it
binds Entra ID's login port on loopback over HTTPS (azure-identity refuses an ``http`` authority; the
certificate is the emulator's throw-away CA: ARM's when ARM runs, else one made here), serves the
cluster's OIDC issuer there, writes the projected token and starts rotating it. ``environment()`` is
what the workload-identity webhook injects into a labelled pod: ``AZURE_CLIENT_ID``,
``AZURE_TENANT_ID``, ``AZURE_FEDERATED_TOKEN_FILE`` and ``AZURE_AUTHORITY_HOST`` (with its trailing
``/``). Tests mis-set the federation with :meth:`WorkloadPod.set_federated_credential` and cut the
issuer off with ``issuer_reachable = False``.

Example::

    >>> from mi_notebook.emulator import Emulator
    >>> with Emulator(profile="workload", arm=False, keyvault=False) as emu:
    ...     env = emu.environment
    ...     list(env), env["AZURE_AUTHORITY_HOST"] == emu.workload.authority + "/"
    (['AZURE_CLIENT_ID', 'AZURE_TENANT_ID', 'AZURE_FEDERATED_TOKEN_FILE', 'AZURE_AUTHORITY_HOST'], True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..admin import ADMIN_PREFIX
from ..server import HttpRequest, HttpResponse, HttpServer, json_response
from ..tls import DEFAULT_HOSTS, TlsMaterial
from ..world import VmIdentity
from .cluster import Cluster, ServiceAccountToken
from .entra import EntraService
from .federation import FederatedCredential
from .options import WorkloadOptions
from .tokenfile import ProjectedTokenFile

if TYPE_CHECKING:  # pragma: no cover
    from .. import Emulator

__all__ = ["WorkloadPod"]


class WorkloadPod:
    """An AKS pod with workload identity, for ``emulator`` (its VM's tenant and identities, its clock).

    Attributes: ``options``, ``identity`` (the federated user-assigned identity), ``cluster``,
    ``token_file``, ``federated_credentials`` (a list: edit it, or use the methods below),
    ``issuer_reachable`` (False: Entra answers AADSTS90061 and the issuer's documents are not served),
    ``entra``; once started ``authority`` (``https://127.0.0.1:PORT``), ``ca_bundle``, ``token_url``.

    Example::

        >>> from mi_notebook.emulator import Emulator
        >>> with Emulator(profile="workload", workload={"namespace": "data"}, arm=False, keyvault=False) as emu:
        ...     pod = emu.workload
        ...     pod.identity.name, pod.federated_credentials[0].subject, pod.token_url.endswith("/oauth2/v2.0/token")
        ('id-notebook-1', 'system:serviceaccount:data:jupyter-notebook', True)
    """

    def __init__(self, emulator: Emulator, options: WorkloadOptions) -> None:
        self.emulator = emulator
        self.options = options
        self.vm = emulator.vm
        self.keys = emulator.keys
        self.issuer = emulator.issuer
        self.faults = emulator.faults
        self.clock = emulator.clock
        self.identity = self._find_identity(options.identity)
        self.cluster = Cluster(options, seed=self.vm.seed, tenant_id=self.vm.tenant_id)
        self.token_file = ProjectedTokenFile(self.cluster, clock=self.clock, directory=options.token_dir,
                                             rotation=options.rotation, poll=options.rotation_poll)
        self.federated_credentials: list[FederatedCredential] = []
        self.issuer_reachable = True
        self.entra = EntraService(self)
        self.authority = ""
        self.ca_bundle: str | None = None
        self.tls: TlsMaterial | None = None  # the certificate material presented (ARM's, or made here)
        self._tls: TlsMaterial | None = None  # only when made here
        self._server: HttpServer | None = None

    def _find_identity(self, name: str | None) -> VmIdentity:
        users = self.vm.user_identities
        if not users:
            raise ValueError("the workload profile federates a user-assigned identity, and the VM has none: "
                             "keep user_assigned at 1 or more")
        if name is None:
            return users[0]
        for ident in users:
            if name in (ident.name, ident.client_id):
                return ident
        raise ValueError(f"workload identity {name!r} is none of the user-assigned identities "
                         f"({', '.join(i.name for i in users)})")

    # ---- life cycle --------------------------------------------------------------------------------------
    def start(self, tls: TlsMaterial | None = None) -> WorkloadPod:
        """Serve Entra ID and the issuer over HTTPS (``tls``: the CA to present, else a new one), write the token."""
        if self._server is not None:
            return self
        host = self.emulator.host
        if tls is None:
            self._tls = tls = TlsMaterial.generate(DEFAULT_HOSTS if host in DEFAULT_HOSTS else (*DEFAULT_HOSTS, host))
        server = HttpServer(self._dispatch, host=host, port=0, server_header=None,
                            request_log=self.emulator.requests, clock=self.clock, service="entra",
                            ssl_context=tls.server_context())
        try:
            server.start()
            self._server = server
            shown = f"[{host}]" if ":" in host else host
            self.authority = f"https://{shown}:{server.port}"
            self.ca_bundle = tls.ca_bundle
            self.tls = tls
            self.cluster.bind(self.authority)
            self.federated_credentials = self._configured_credentials()
            self.token_file.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop serving, stop rotating, remove the token file (and a CA made here). Idempotent."""
        self.token_file.stop()
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._tls is not None:
            self._tls.cleanup()
            self._tls = None
        self.ca_bundle = None
        self.tls = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def token_url(self) -> str:
        return f"{self.authority}/{self.vm.tenant_id}/oauth2/v2.0/token"

    def environment(self) -> dict[str, str]:
        """The variables the webhook injects (empty until started); the authority host ends with ``/``."""
        if not self.running or self.token_file.path is None:
            return {}
        return {"AZURE_CLIENT_ID": self.identity.client_id, "AZURE_TENANT_ID": self.vm.tenant_id,
                "AZURE_FEDERATED_TOKEN_FILE": self.token_file.path, "AZURE_AUTHORITY_HOST": self.authority + "/"}

    # ---- the service-account token -----------------------------------------------------------------------
    def rotate_service_account_token(self) -> ServiceAccountToken:
        """Rotate the projected token now, as the kubelet would (the old one stays valid until its ``exp``)."""
        return self.token_file.rotate()

    def rotate_if_due(self) -> bool:
        """One look by the emulator's clock: rotate if the token is older than 80% of its lifetime (or 24 h)."""
        return self.token_file.rotate_if_due()

    # ---- the federation ------------------------------------------------------------------------------------
    def _credential(self, *, name: str | None = None, identity: str | None = None, issuer: str | None = None,
                    subject: str | None = None, audiences: Sequence[str] | None = None,
                    created_at: float) -> FederatedCredential:
        owner = self._find_identity(identity) if identity is not None else self.identity
        return FederatedCredential(
            name or f"{self.options.namespace}-{self.options.service_account}", owner.client_id,
            self.cluster.issuer if issuer is None else issuer, self.cluster.subject if subject is None else subject,
            (self.options.audience,) if audiences is None else tuple(audiences), created_at)

    def _configured_credentials(self) -> list[FederatedCredential]:
        specs = self.options.federated_credentials
        if specs is None:
            return [self._credential(created_at=float("-inf"))]
        return [self._credential(**dict(spec), created_at=float("-inf")) for spec in specs]

    def set_federated_credential(self, *, issuer: str | None = None, subject: str | None = None,
                                 audiences: Sequence[str] | None = None, name: str | None = None) -> FederatedCredential:
        """Replace the identity's federated credentials by one (unnamed fields: the matching values).

        It takes effect ``options.propagation`` seconds later by the emulator's clock.

        Example::

            >>> from mi_notebook.emulator import Emulator
            >>> with Emulator(profile="workload", arm=False, keyvault=False) as emu:
            ...     fic = emu.workload.set_federated_credential(issuer=emu.workload.cluster.issuer.rstrip("/"))
            ...     fic.issuer.endswith("/"), len(emu.workload.federated_credentials)
            (False, 1)
        """
        mine = self.identity.client_id
        self.federated_credentials[:] = [c for c in self.federated_credentials if c.client_id != mine]
        return self.add_federated_credential(issuer=issuer, subject=subject, audiences=audiences, name=name)

    def add_federated_credential(self, *, issuer: str | None = None, subject: str | None = None,
                                 audiences: Sequence[str] | None = None, name: str | None = None,
                                 identity: str | None = None) -> FederatedCredential:
        """Add a federated credential (to ``identity``, a name or client id; default the pod's identity)."""
        credential = self._credential(name=name, identity=identity, issuer=issuer, subject=subject,
                                      audiences=audiences, created_at=self.clock())
        self.federated_credentials.append(credential)
        return credential

    # ---- serving -----------------------------------------------------------------------------------------
    def _dispatch(self, request: HttpRequest) -> HttpResponse:
        if request.path == ADMIN_PREFIX or request.path.startswith(ADMIN_PREFIX + "/"):
            return self.emulator.admin.handle(request)
        return self.entra.handle(request)

    def pod_answer(self, request: HttpRequest) -> HttpResponse:
        """What the emulator's plain-http port says in a pod: there is no managed-identity endpoint here."""
        return json_response(404, {"error": "not_found", "error_description": (
            "This emulator plays an AKS pod with workload identity: it has no IMDS or managed-identity endpoint. "
            f"Tokens come from Entra ID at {self.authority or 'AZURE_AUTHORITY_HOST'} in exchange for the token "
            "in AZURE_FEDERATED_TOKEN_FILE.")}, endpoint="not-found", service="workload")
