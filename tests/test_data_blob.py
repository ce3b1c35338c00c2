"""Blob Storage with a managed-identity token, on Azurite (Microsoft's Storage emulator, a real other party).

Azurite in OAuth mode checks the token's audience, issuer and expiry; the token comes from the embedded
IMDS emulator through ``mi.credential()``, exactly as on a VM. Unmodified ``azure-storage-blob``.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

pytest.importorskip("azure.storage.blob")

import pandas as pd  # noqa: E402
from azure.core.exceptions import ClientAuthenticationError  # noqa: E402
from azure.storage.blob import BlobServiceClient  # noqa: E402

import mi_notebook as mi  # noqa: E402
from mi_notebook.emulator import Emulator  # noqa: E402

CSV = b"species,sepal_length\nsetosa,5.1\nversicolor,7.0\nvirginica,6.3\n"


@pytest.fixture
def conn(clean_connection):
    connection = mi.connect(mode="emulator", emulator_factory=lambda: Emulator(throttle=False, seed=16))
    yield connection
    mi.disconnect()


class FixedScope:
    """A credential that hands out tokens for one resource whatever it is asked for (the wrong-audience bug)."""

    def __init__(self, resource: str) -> None:
        self.resource = resource

    def get_token(self, *scopes, **kwargs):
        return mi.credential().get_token(self.resource + "/.default", **kwargs)


def test_a_csv_goes_up_and_comes_back_as_a_dataframe(azurite, conn):
    service = BlobServiceClient(azurite.account_url, credential=mi.credential(), connection_verify=azurite.ca_bundle)
    container = service.get_container_client("notebooks-csv")
    if not container.exists():
        container.create_container()
    container.upload_blob("iris.csv", CSV, overwrite=True)
    assert [b.name for b in container.list_blobs()] == ["iris.csv"]
    frame = pd.read_csv(io.BytesIO(container.download_blob("iris.csv").readall()))
    assert list(frame.columns) == ["species", "sepal_length"] and frame["sepal_length"].max() == 7.0
    tokens = conn.emulator.requests.filter(service="imds", endpoint="token")
    assert [t.query["resource"] for t in tokens] == [["https://storage.azure.com/"]]  # one token, cached


@pytest.mark.parametrize("resource", ["https://management.azure.com", "https://vault.azure.net"])
def test_a_token_for_another_audience_is_refused(azurite, conn, resource):
    service = BlobServiceClient(azurite.account_url, credential=FixedScope(resource),
                                connection_verify=azurite.ca_bundle)
    with pytest.raises(ClientAuthenticationError) as caught:
        service.get_container_client("anything").exists()
    assert caught.value.error_code == "AuthenticationFailed"
    assert "Invalid token audience" in str(caught.value)


def test_azurite_runs_without_telemetry_on_loopback(azurite):
    argv = azurite.process.args
    assert "--disableTelemetry" in argv and argv[argv.index("--blobHost") + 1] == "127.0.0.1"
    assert azurite.account_url.startswith("https://127.0.0.1:")
    environ = Path(f"/proc/{azurite.process.pid}/environ").read_bytes().split(b"\0")
    node_options = next(v for v in environ if v.startswith(b"NODE_OPTIONS="))
    assert b"_guard/loopback_guard.js" in node_options  # the suite's Node guard watches it too
