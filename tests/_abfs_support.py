"""TEST-ONLY stand-in for ``mi_notebook.aio.credential()`` until that lands: an async credential over the
sync ``mi.credential()`` (each fetch in a thread), picklable as (endpoint, sharing, agent dir), so that
Dask workers connect to the same endpoint themselves.

Example::

    >>> import pickle
    >>> cred = async_credential("http://127.0.0.1:9", share=True, agent_dir="/tmp/x")
    >>> pickle.loads(pickle.dumps(cred)).imds_url
    'http://127.0.0.1:9'
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any


class ThreadedAsyncCredential:
    def __init__(self, imds_url: str, *, share: bool = False, agent_dir: str | None = None) -> None:  # agent_dir None: $XDG_RUNTIME_DIR
        self.imds_url, self.share, self.agent_dir = imds_url, share, agent_dir
        self._lock = threading.Lock()
        self._sync: Any = None

    def _credential(self) -> Any:
        with self._lock:
            if self._sync is None:
                import mi_notebook as mi

                conn = mi.connect(self.imds_url, share=self.share, agent_dir=self.agent_dir)
                self._sync = mi.credential(connection=conn)
            return self._sync

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        return await asyncio.to_thread(self._credential().get_token, *scopes, **kwargs)

    async def close(self) -> None:
        pass

    async def __aenter__(self) -> ThreadedAsyncCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass

    def __getstate__(self) -> dict[str, Any]:
        return {"imds_url": self.imds_url, "share": self.share, "agent_dir": self.agent_dir}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["imds_url"], share=state["share"], agent_dir=state["agent_dir"])

    def __repr__(self) -> str:
        return f"ThreadedAsyncCredential({self.imds_url}, share={self.share})"


def async_credential(imds_url: str, *, share: bool = False, agent_dir: str | None = None) -> ThreadedAsyncCredential:
    return ThreadedAsyncCredential(imds_url, share=share, agent_dir=agent_dir)
