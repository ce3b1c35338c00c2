"""A per-user token agent: many kernels on one machine, one request per refresh.

``protocol`` (the socket's place, the peer check, the framing), ``upstream`` (a connection described
and rebuilt, the hold-back shared across clients), ``server`` (the agent process), ``client`` (a
kernel's side: ``AgentClient`` and the ``SharedCache`` of ``mi.connect(share=True)``) and
``command`` (``mi-notebook agent run | status | stop``). See docs/agent.md.

Example::

    >>> from mi_notebook.agent.client import share_requested
    >>> share_requested(None, {})
    False
"""
