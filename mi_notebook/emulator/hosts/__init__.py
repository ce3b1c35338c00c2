"""The managed-identity hosts other than a VM: Azure ML, App Service, Arc and Cloud Shell.

Each is a :class:`HostService` (:mod:`.base`): a pure dispatcher ``(HttpRequest) -> HttpResponse``
for that host's token endpoint, in that host's words, with the environment variables the real host
sets. :mod:`.profiles` names them and checks their options; :mod:`.usertokens` is the signed-in user
whose tokens Cloud Shell (and Azure ML with SSO) hand out; :mod:`.arckeys` writes Arc's challenge
key files. The modules :mod:`.azureml`, :mod:`.appservice`, :mod:`.arc` and :mod:`.cloudshell` are
imported when their profile is used.

Example::

    >>> service_class("appservice").__name__, check_profile("AzureML")
    ('AppServiceService', 'azureml')
"""

from __future__ import annotations

from .arckeys import DEFAULT_KEY_DIR, KeyDirectoryError
from .base import HostContext, HostService
from .profiles import PROFILES, USER_TOKEN_PROFILES, check_profile, host_options, service_class
from .usertokens import SignedInUser, UserTokenIssuer

__all__ = ["DEFAULT_KEY_DIR", "PROFILES", "USER_TOKEN_PROFILES", "HostContext", "HostService", "KeyDirectoryError",
           "SignedInUser", "UserTokenIssuer", "check_profile", "host_options", "service_class"]
