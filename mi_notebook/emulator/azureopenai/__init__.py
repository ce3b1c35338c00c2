"""The emulated Azure OpenAI: an inference data plane over HTTPS, with its audience check and data-plane RBAC.

:class:`OpenAIService` (:mod:`.service`) is a pure dispatcher ``(HttpRequest) -> HttpResponse`` for one
account; :class:`OpenAIServer` (:mod:`.server`) serves it on its own loopback port for an
:class:`~mi_notebook.emulator.Emulator`, which starts it on first use of ``emu.openai_url`` (option
``openai``, on by default; :class:`OpenAIOptions` in :mod:`.deployments`) and exposes ``emu.openai``
and ``emu.openai_ca_bundle``. No model runs: answers are derived from the request and say they come
from the emulator (:mod:`.answers`). Served, for the unmodified openai SDK (``AzureOpenAI`` and the
v1 form ``OpenAI(base_url=.../openai/v1/)``)::

    POST /openai/deployments/{deployment}/chat/completions?api-version=YYYY-MM-DD[-preview]
    POST /openai/deployments/{deployment}/embeddings?api-version=...
    POST /openai/v1/chat/completions          the deployment in the body's "model"
    POST /openai/v1/embeddings

Unless ``role_assignments`` are given, the system-assigned identity is *Cognitive Services OpenAI
User* on the account; the user-assigned ones have no role there and get the ``PermissionDenied`` 401.

Example::

    >>> import requests
    >>> from mi_notebook.emulator import Emulator
    >>> with Emulator(throttle=False, keyvault=False) as emu:
    ...     tok = requests.get(emu.token_url, headers={"Metadata": "true"}, params={
    ...         "api-version": "2018-02-01", "resource": "https://cognitiveservices.azure.com"}).json()["access_token"]
    ...     r = requests.post(emu.openai_url + "/openai/v1/chat/completions", headers={"Authorization": "Bearer " + tok},
    ...                       json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    ...                       verify=emu.openai_ca_bundle)
    ...     r.status_code, r.json()["choices"][0]["message"]["content"][:47]
    (200, 'This answer comes from the mi-notebook emulator')
"""

from .auth import INVALID_KEY, PERMISSION_DENIED, UNAUTHORIZED, OpenAITokenCheck
from .deployments import COGNITIVE_SERVICES, DEFAULT_DEPLOYMENTS, Deployment, OpenAIOptions
from .server import OpenAIServer
from .service import ACTIONS, OPENAI_USER, OpenAIService

__all__ = ["ACTIONS", "COGNITIVE_SERVICES", "DEFAULT_DEPLOYMENTS", "INVALID_KEY", "OPENAI_USER", "PERMISSION_DENIED",
           "UNAUTHORIZED", "Deployment", "OpenAIOptions", "OpenAIServer", "OpenAIService", "OpenAITokenCheck"]
