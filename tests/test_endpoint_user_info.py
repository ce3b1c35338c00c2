"""User info in an IMDS URL is refused (issue 24, finding 10): ``http://127.0.0.1:1@192.0.2.9`` reads as
loopback but goes to 192.0.2.9, with the user info as an ``Authorization: Basic`` header. IMDS's URL goes
through the one endpoint check (``check_endpoint``, tests/test_sources_edge_inputs.py) like every
host's. Nothing here sends a request: each refusal comes before any."""

from __future__ import annotations

import pytest

import mi_notebook as mi
from mi_notebook.agent.upstream import build_source
from mi_notebook.connection import current
from mi_notebook.sources import ImdsClient

pytestmark = pytest.mark.usefixtures("clean_connection")

USER_INFO = ["http://127.0.0.1:1@192.0.2.9", "http://@192.0.2.9", "http://looks-local:pw@127.0.0.1:8080",
             "http://:@127.0.0.1:8080"]


@pytest.mark.parametrize("url", USER_INFO)
def test_imds_client_refuses_user_info(url):
    with pytest.raises(ValueError, match="user info"):
        ImdsClient(url=url)


@pytest.mark.parametrize("url", USER_INFO)
def test_connect_refuses_user_info(url):
    with pytest.raises(ValueError, match="user info"):
        mi.connect(url)
    assert current() is None


def test_the_imds_url_variable_with_user_info_is_refused():
    with pytest.raises(ValueError, match="user info"):
        mi.connect(environ={"MI_NOTEBOOK_IMDS_URL": USER_INFO[0]})


def test_an_agent_description_with_user_info_is_refused():
    with pytest.raises(ValueError, match="user info"):
        build_source({"host": "vm", "endpoint": USER_INFO[0] + "/"})
