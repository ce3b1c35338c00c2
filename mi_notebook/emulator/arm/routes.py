"""What an ARM request names: its route, the api-versions the route accepts, and the RBAC action and scope.

Pure functions of the path and the method, with no state: :func:`parse_route` reads the path (segment
names case-insensitive, as in ARM), :func:`version_problem` checks ``api-version`` against the route's
provider, :func:`action_and_scope` names what role-based access must allow and where.

Example::

    >>> route = parse_route("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm")
    >>> route.kind, route.resource_id
    ('resource', '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm')
    >>> action_and_scope(route, "read")[0]
    'Microsoft.Compute/virtualMachines/read'
    >>> version_problem(route, "2024-07-01", "westeurope") is None
    True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from .catalog import UAMI_TYPE, VM_TYPE

__all__ = ["COMPUTE_API_VERSIONS", "METHOD_ACTIONS", "MSI_API_VERSIONS", "READ_ACTIONS", "RESOURCES_API_VERSIONS",
           "Route", "action_and_scope", "parse_route", "read_action", "version_problem"]

# api-versions ARM accepts, per resource type (lists abridged from the providers' published versions,
# always including what the current official SDKs send).
RESOURCES_API_VERSIONS = (
    "2025-04-01", "2025-03-01", "2024-11-01", "2024-07-01", "2024-03-01", "2023-07-01", "2022-12-01",
    "2022-09-01", "2022-05-01", "2022-01-01", "2021-04-01", "2021-01-01", "2020-10-01", "2020-08-01",
    "2020-06-01", "2020-01-01", "2019-11-01", "2019-10-01", "2019-08-01", "2019-07-01", "2019-06-01",
    "2019-05-10", "2019-05-01", "2019-03-01", "2018-09-01", "2018-06-01", "2018-05-01", "2018-02-01",
    "2017-05-10", "2016-09-01", "2016-06-01", "2016-02-01", "2015-11-01", "2015-01-01", "2014-04-01",
)
COMPUTE_API_VERSIONS = (
    "2026-04-01", "2025-11-01", "2025-04-01", "2024-11-01", "2024-07-01", "2024-03-01", "2023-09-01",
    "2023-07-01", "2023-03-01", "2022-11-01", "2022-08-01", "2022-03-01", "2021-11-01", "2021-07-01",
    "2021-04-01", "2021-03-01", "2020-12-01", "2020-06-01", "2019-12-01", "2019-07-01", "2019-03-01",
    "2018-10-01", "2018-06-01", "2018-04-01", "2017-12-01", "2017-03-30", "2016-04-30-preview",
    "2016-03-30", "2015-06-15",
)
MSI_API_VERSIONS = (
    "2025-01-31-preview", "2024-11-30", "2023-07-31-preview", "2023-01-31", "2022-01-31-preview",
    "2021-09-30-preview", "2018-11-30", "2015-08-31-preview",
)
_VERSIONS_BY_TYPE = {VM_TYPE.lower(): COMPUTE_API_VERSIONS, UAMI_TYPE.lower(): MSI_API_VERSIONS}
_VERSION_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}(-(preview|beta|privatepreview|alpha))?$")

READ_ACTIONS = {
    "subscriptions": "Microsoft.Resources/subscriptions/read",
    "groups": "Microsoft.Resources/subscriptions/resourceGroups/read",
    "group-resources": "Microsoft.Resources/subscriptions/resourceGroups/resources/read",
    "resources": "Microsoft.Resources/subscriptions/resources/read",
}
#: HTTP method -> the verb at the end of the RBAC action it needs
METHOD_ACTIONS = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete",
                  "POST": "action"}


@dataclass
class Route:
    """What a path names: ``kind`` (see :func:`parse_route`) and the parts it carries.

    Example::

        >>> r = Route("type-in-sub", "s", namespace="Microsoft.Storage", rtype="storageAccounts")
        >>> r.log_name, r.full_type
        ('type-in-sub', 'Microsoft.Storage/storageAccounts')
    """

    kind: str
    subscription: str | None = None
    group: str | None = None
    namespace: str | None = None
    rtype: str | None = None
    name: str | None = None

    @property
    def log_name(self) -> str:
        return self.kind

    @property
    def full_type(self) -> str:
        return f"{self.namespace}/{self.rtype}"

    @property
    def resource_id(self) -> str:
        """The id of the single resource a ``"resource"`` route names."""
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.group}"
                f"/providers/{self.namespace}/{self.rtype}/{self.name}")


def parse_route(path: str) -> Route:
    """The route a (percent-encoded) path names; kind ``"not-found"`` when the emulated ARM serves no such path.

    Kinds: ``subscriptions``, ``subscription``, ``groups``, ``group``, ``group-resources``,
    ``resources``, ``type-in-sub``, ``type-in-group``, ``resource``, ``not-found``.

    Example::

        >>> parse_route("/SUBSCRIPTIONS/s/resourcegroups/my%20rg")
        Route(kind='group', subscription='s', group='my rg', namespace=None, rtype=None, name=None)
        >>> parse_route("/providers").kind
        'not-found'
    """
    segs = [unquote(s) for s in path.split("/") if s]
    low = [s.lower() for s in segs]
    n = len(segs)
    if n == 0 or low[0] != "subscriptions":
        return Route("not-found")
    if n == 1:
        return Route("subscriptions")
    sub, rest, lrest = segs[1], segs[2:], low[2:]
    if not rest:
        return Route("subscription", sub)
    if lrest == ["resourcegroups"]:
        return Route("groups", sub)
    if lrest == ["resources"]:
        return Route("resources", sub)
    if len(rest) == 3 and lrest[0] == "providers":
        return Route("type-in-sub", sub, namespace=rest[1], rtype=rest[2])
    if lrest[0] == "resourcegroups" and len(rest) >= 2:
        group, tail, ltail = rest[1], rest[2:], lrest[2:]
        if not tail:
            return Route("group", sub, group)
        if ltail == ["resources"]:
            return Route("group-resources", sub, group)
        if ltail[0] == "providers" and len(tail) == 3:
            return Route("type-in-group", sub, group, tail[1], tail[2])
        if ltail[0] == "providers" and len(tail) == 4:
            return Route("resource", sub, group, tail[1], tail[2], tail[3])
    return Route("not-found", sub)


def version_problem(route: Route, version: str, location: str) -> tuple[str, str] | None:
    """ARM's 400 ``(code, message)`` when ``route`` does not accept ``version``, else None.

    Resource routes check the provider's versions (the VM's and the user-assigned identities'; any
    well-formed version for other providers, a simplification); the others check Microsoft.Resources'.

    Example::

        >>> version_problem(parse_route("/subscriptions"), "2022-12-01", "westeurope") is None
        True
        >>> version_problem(parse_route("/subscriptions"), "1999-01-01", "westeurope")[0]
        'InvalidApiVersionParameter'
        >>> version_problem(parse_route("/subscriptions/s/providers/Microsoft.Web/sites"), "x", "westeurope")[0]
        'NoRegisteredProviderFound'
    """
    if route.kind in ("resource", "type-in-group", "type-in-sub"):
        supported = _VERSIONS_BY_TYPE.get(route.full_type.lower())
        if supported is None:  # other providers: any well-formed version (a simplification)
            ok = bool(_VERSION_SHAPE.match(version))
            supported = ()
        else:
            ok = version in supported
        if not ok:
            return ("NoRegisteredProviderFound",
                    f"No registered resource provider found for location '{location}' and "
                    f"API version '{version}' for type '{route.rtype}'. The supported api-versions "
                    f"are '{', '.join(supported) or 'YYYY-MM-DD'}'. The supported locations are "
                    f"'{location}'.")
        return None
    if version not in RESOURCES_API_VERSIONS:
        return ("InvalidApiVersionParameter",
                f"The api-version '{version}' is invalid. The supported versions are "
                f"'{','.join(RESOURCES_API_VERSIONS)}'.")
    return None


def action_and_scope(route: Route, verb: str) -> tuple[str, str]:
    """The RBAC action ``route`` needs for ``verb`` (``read``, ``write``, ...) and the scope it is checked at.

    Lists are read at the scope that holds them (whatever the verb); single things take the verb.

    Example::

        >>> action_and_scope(parse_route("/subscriptions/s/resourceGroups/rg"), "delete")
        ('Microsoft.Resources/subscriptions/resourceGroups/delete', '/subscriptions/s/resourceGroups/rg')
        >>> action_and_scope(parse_route("/subscriptions/s/resources"), "write")
        ('Microsoft.Resources/subscriptions/resources/read', '/subscriptions/s')
    """
    sub_scope = f"/subscriptions/{route.subscription}"
    group_scope = f"{sub_scope}/resourceGroups/{route.group}"
    if route.kind in ("subscriptions", "subscription"):
        return READ_ACTIONS["subscriptions"].replace("/read", f"/{verb}"), \
            sub_scope if route.subscription else "/"
    if route.kind == "groups":
        return READ_ACTIONS["groups"], sub_scope
    if route.kind == "group":
        return READ_ACTIONS["groups"].replace("/read", f"/{verb}"), group_scope
    if route.kind == "group-resources":
        return READ_ACTIONS["group-resources"], group_scope
    if route.kind == "resources":
        return READ_ACTIONS["resources"], sub_scope
    full = _canonical_type(route.full_type)
    if route.kind == "type-in-sub":
        return read_action(full), sub_scope
    if route.kind == "type-in-group":
        return read_action(full), group_scope
    return f"{full}/{verb}", route.resource_id


def read_action(rtype: str) -> str:
    """The RBAC action that reads a resource of type ``rtype``.

    Example::

        >>> read_action("Microsoft.KeyVault/vaults")
        'Microsoft.KeyVault/vaults/read'
    """
    return f"{rtype}/read"


def _canonical_type(full_type: str) -> str:
    known = {t.lower(): t for t in (VM_TYPE, UAMI_TYPE)}
    return known.get(full_type.lower(), full_type)
