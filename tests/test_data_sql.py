"""The access-token struct pyodbc passes as attribute 1256 (SQL_COPT_SS_ACCESS_TOKEN) to the ODBC driver."""

from __future__ import annotations

import struct

import pytest

import mi_notebook as mi
from mi_notebook.data import SQL_COPT_SS_ACCESS_TOKEN, SQL_RESOURCE, sql_token_struct
from mi_notebook.tokens import AccessToken


def test_layout_is_little_endian_length_then_utf16le():
    packed = sql_token_struct("eyJ.é.x")
    (length,) = struct.unpack_from("<I", packed)
    assert length == len("eyJ.é.x") * 2 == len(packed) - 4
    assert packed[4:].decode("utf-16-le") == "eyJ.é.x"
    assert SQL_COPT_SS_ACCESS_TOKEN == 1256 and SQL_RESOURCE == "https://database.windows.net/"


def test_an_emulator_token_for_sql_packs_and_nothing_shows_it(clean_connection):
    mi.connect(mode="emulator")
    token = mi.get_token(SQL_RESOURCE)
    packed = sql_token_struct(token)
    assert packed[4:].decode("utf-16-le") == token.reveal()
    azure_core_like = mi.credential().get_token(SQL_RESOURCE + ".default")
    assert sql_token_struct(azure_core_like)[4:].decode("utf-16-le") == azure_core_like.token


def test_wrong_audience_and_bad_input_are_refused_before_any_use():
    arm = AccessToken("a.b.c", resource="https://management.azure.com/", expires_on=1)
    with pytest.raises(ValueError, match="Azure SQL accepts only tokens for 'https://database.windows.net/'"):
        sql_token_struct(arm)
    with pytest.raises(ValueError, match="token is empty"):
        sql_token_struct("")
    with pytest.raises(ValueError, match="expected an AccessToken or a token string, got int"):
        sql_token_struct(42)
    ok = AccessToken("a.b.c", resource="https://database.windows.net", expires_on=1)  # no slash is fine too
    assert sql_token_struct(ok)[4:] == "a.b.c".encode("utf-16-le")


SERVICES = ("SQL", "Blob", "Key Vault", "Cosmos", "Event Hubs", "Service Bus", "Data Lake")


def _held(summary: str) -> set[str]:
    return {service for service in SERVICES if service in summary}


def test_the_data_package_holds_what_its_summaries_say():
    """Each data service the package's summary line, or its row in docs/architecture.md (up to the first
    ';'), says it holds something for has a public name here about it. (They once promised Blob and Key
    Vault helpers the package never had: those services go through the SDK clients with mi.credential().)"""
    import importlib
    from pathlib import Path

    data = importlib.import_module("mi_notebook.data")
    helpers = [getattr(data, name) for name in data.__all__ if callable(getattr(data, name))]
    about = " ".join(f"{h.__doc__} {importlib.import_module(h.__module__).__doc__}" for h in helpers)
    row = next(line for line in (Path(__file__).parents[1] / "docs" / "architecture.md").read_text().splitlines()
               if "`data/`" in line)
    for summary in (data.__doc__.split("\n\n")[0], row.split("`data/`", 1)[1].split(";")[0]):
        assert _held(summary), f"the summary names no data service: {summary!r}"
        assert not {s for s in _held(summary) if s not in about}, f"promised but not held: {summary!r}"
