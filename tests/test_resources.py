"""Resources: aliases, App ID URIs, app ids and .default scopes; garbage is a clear ValueError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mi_notebook.resources import (
    WELL_KNOWN_RESOURCES,
    WellKnownResource,
    alias_for,
    list_resources,
    resolve_resource,
    resource_to_scope,
    scope_to_resource,
    suggest_resources,
)

APP_ID = "00001111-aaaa-2222-bbbb-3333cccc4444"


def test_table_has_the_contracted_aliases():
    for alias in ("arm", "vault", "storage", "graph", "sql", "cosmos", "eventhubs", "servicebus", "monitor",
                  "loganalytics", "devops"):
        entry = WELL_KNOWN_RESOURCES[alias]
        assert isinstance(entry, WellKnownResource) and entry.alias == alias and entry.title
    assert WELL_KNOWN_RESOURCES["arm"].uri == "https://management.azure.com/"
    assert [r.alias for r in list_resources()] == list(WELL_KNOWN_RESOURCES)


def test_every_well_known_uri_is_itself_a_valid_resource():
    for entry in list_resources():
        assert resolve_resource(entry.uri) == entry.uri
        assert alias_for(entry.uri) == entry.alias
        assert scope_to_resource(entry.scope) == entry.uri.rstrip("/")


@pytest.mark.parametrize(
    ("text", "resource"),
    [
        ("arm", "https://management.azure.com/"),
        ("ARM", "https://management.azure.com/"),
        ("  vault\n", "https://vault.azure.net"),
        ("graph", "https://graph.microsoft.com/"),
        ("https://management.azure.com/", "https://management.azure.com/"),
        ("https://management.azure.com", "https://management.azure.com/"),  # one form per well-known resource
        ("https://management.azure.com/.default", "https://management.azure.com/"),  # the SDKs' scope
        ("HTTPS://Management.Azure.com/", "https://management.azure.com/"),
        ("https://vault.azure.net/", "https://vault.azure.net"),
        ("https://storage.azure.com/.default", "https://storage.azure.com/"),
        ("499B84AC-1321-427F-AA17-267CA6975798/.default", "499b84ac-1321-427f-aa17-267ca6975798"),
        ("https://management.azure.com//.default", "https://management.azure.com/"),
        ("https://vault.azure.net/.default", "https://vault.azure.net"),
        ("api://my-api", "api://my-api"),
        (f"api://{APP_ID}", f"api://{APP_ID}"),
        (f"api://{APP_ID}/.default", f"api://{APP_ID}"),
        ("api://contoso.com/productsapi", "api://contoso.com/productsapi"),
        ("https://contoso.onmicrosoft.com/productsapi", "https://contoso.onmicrosoft.com/productsapi"),
        ("https://product.contoso.com:8443/api", "https://product.contoso.com:8443/api"),
        (APP_ID, APP_ID),
        (APP_ID.upper(), APP_ID.upper()),
        (f"{APP_ID}/.default", APP_ID),
    ],
)
def test_resolve_good_inputs(text, resource):
    assert resolve_resource(text) == resource


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "resource is empty"),
        ("   ", "resource is empty"),
        ("\t\n", "resource is empty"),
        ("armm", "unknown resource alias 'armm'; did you mean 'arm'\\? known aliases: arm, vault"),
        ("management.azure.com", "is not a URI; did you mean 'https://management.azure.com/'\\?"),
        ("vault.azure.com", "is not a URI; did you mean 'https://vault.azure.net'\\?"),
        ("myapp.contoso.com", "is not a URI; expected"),
        ("not a uri", "one resource at a time"),
        ("https://management.azure.com/ https://vault.azure.net", "holds 2"),
        ("https://graph.microsoft.com/User.Read,https://graph.microsoft.com/Mail.Read", "holds 2"),
        ("arm;vault", "holds 2"),
        ("http://management.azure.com/", "uses http://.*did you mean 'https://management.azure.com/'"),
        ("ftp://example.com", "scheme must be https:// or api://"),
        ("file:///etc/passwd", "scheme must be https:// or api://"),
        ("https://", "no valid host"),
        ("https:///path", "no valid host"),
        ("https://exa_mple.com/", "no valid host"),
        ("https://user:pw@example.com/", "must not contain user info"),
        ("https://example.com/?resource=x", "must not have a query or fragment"),
        ("https://example.com/#frag", "must not have a query or fragment"),
        ("https://example.com:99999/", "not a valid URI"),
        ("https://exam<ple>.com", "characters not allowed"),
        ("/.default", "names no resource"),
        ("arm/.default", "does not start with an App ID URI"),
        ("http://x.com/.default", "uses http://"),
        (None, "must be a string"),
        (42, "must be a string"),
    ],
)
def test_resolve_bad_inputs(text, message):
    with pytest.raises(ValueError, match=message) as info:
        resolve_resource(text)
    assert len(str(info.value)) < 600


def test_every_spelling_of_a_well_known_resource_is_one_resource():
    for entry in list_resources():
        spellings = {entry.alias, entry.alias.upper(), entry.uri, entry.uri.upper(), entry.scope}
        if "://" in entry.uri:
            spellings |= {entry.uri.rstrip("/"), entry.uri.rstrip("/") + "/", entry.uri.rstrip("/") + "/.default"}
        assert {resolve_resource(s) for s in spellings} == {entry.uri}, entry.alias


@pytest.mark.parametrize("uri", ["api://my-api/", "api://my-api", "https://contoso.example/api/",
                                 "https://Contoso.example/API", "https://management.core.windows.net/"])
def test_other_resources_keep_the_exact_form_given(uri):
    assert resolve_resource(uri) == uri
    assert resolve_resource(uri.rstrip("/") + "/.default") == uri.rstrip("/")  # a scope: exactly, minus /.default


@pytest.mark.parametrize(("typo", "meant"), [("https://vault.azure.com", "https://vault.azure.net"),
                                              ("https://managment.azure.com/", "https://management.azure.com/"),
                                              ("https://storage.azure.net/.default", "https://storage.azure.com/"),
                                              ("https://graph.microsoft.net", "https://graph.microsoft.com/")])
def test_a_uri_close_to_a_well_known_one_gets_a_suggestion(typo, meant):
    assert suggest_resources(typo) == [meant]
    assert resolve_resource(typo) != meant  # only a hint: Entra ID may know a custom URI that looks like a typo


@pytest.mark.parametrize("text", ["https://vault.azure.net", "arm", "api://my-api", "https://myapp.contoso.com/",
                                  "https://management.core.windows.net/", "", None])
def test_no_suggestion_for_well_known_or_unrelated_uris(text):
    assert suggest_resources(text) == []


def test_errors_show_the_expected_forms():
    with pytest.raises(ValueError) as info:
        resolve_resource("ftp://example.com")
    text = str(info.value)
    assert "'arm'" in text and "https://management.azure.com/" in text and "/.default" in text


def test_long_garbage_is_shortened_in_messages():
    with pytest.raises(ValueError) as info:
        resolve_resource("ftp://" + "x" * 5000)
    assert len(str(info.value)) < 700


def test_scopes():
    assert resource_to_scope("arm") == "https://management.azure.com/.default"
    assert resource_to_scope("https://vault.azure.net") == "https://vault.azure.net/.default"
    assert resource_to_scope("https://vault.azure.net/.default") == "https://vault.azure.net/.default"
    assert resource_to_scope(APP_ID) == f"{APP_ID}/.default"
    assert scope_to_resource(" https://storage.azure.com/.default ") == "https://storage.azure.com"
    with pytest.raises(ValueError, match="does not end in '/.default'.*app-only"):
        scope_to_resource("https://graph.microsoft.com/User.Read")
    with pytest.raises(ValueError, match="must be a string"):
        scope_to_resource(None)  # type: ignore[arg-type]


def test_alias_for():
    assert alias_for("https://management.azure.com") == "arm"
    assert alias_for("HTTPS://MANAGEMENT.AZURE.COM/") == "arm"
    assert alias_for("https://management.azure.com/.default") == "arm"
    assert alias_for("vault") == "vault"
    assert alias_for("499b84ac-1321-427f-aa17-267ca6975798") == "devops"
    assert alias_for("api://my-api") is None
    assert alias_for(None) is None  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet="htps:/api.default-_ABC0123#?@ ", max_size=40)))
def test_resolve_only_ever_raises_value_error(text):
    try:
        resource = resolve_resource(text)
    except ValueError as exc:
        assert str(exc)
    else:
        assert resource and resource == resource.strip()
        assert resolve_resource(resource) == resource  # resolving is idempotent


@settings(max_examples=100, deadline=None)
@given(st.from_regex(r"[a-z][a-z0-9]{0,10}(\.[a-z][a-z0-9]{0,10}){1,3}(/[A-Za-z0-9_-]{1,10}){0,2}", fullmatch=True))
def test_generated_https_and_api_uris_are_accepted(body):
    for scheme in ("https://", "api://"):
        uri = scheme + body
        assert resolve_resource(uri) == uri
        assert scope_to_resource(uri + "/.default") == uri


def test_docstring_examples_run():
    import doctest

    import mi_notebook.resources as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize(("typed", "expected"), [("keyvault", ["vault"]), ("KeyVault", ["vault"]),
                                                 ("storageaccount", ["storage"]), ("openai", ["cognitiveservices"]),
                                                 ("stroage", ["storage"]), ("qwertyuiop", [])])
def test_suggest_aliases(typed, expected):
    from mi_notebook.resources import suggest_aliases

    assert suggest_aliases(typed) == expected


@pytest.mark.parametrize(("scope", "instead"), [
    ("https://graph.microsoft.com/User.Read", "https://graph.microsoft.com/.default"),
    ("https://graph.microsoft.com/Mail.ReadWrite", "https://graph.microsoft.com/.default"),
    ("https://management.azure.com/user_impersonation", "https://management.azure.com/.default"),
    ("https://vault.azure.net/anything", "https://vault.azure.net/.default"),
    ("api://my-api/Files.Read.All", "api://my-api/.default"),
    ("api://contoso.com/productsapi/access_as_user", "api://contoso.com/productsapi/.default"),
])
def test_delegated_scopes_are_refused_with_the_default_scope_to_use(scope, instead):
    with pytest.raises(ValueError, match="managed identities get app-only tokens") as info:
        resolve_resource(scope)
    assert f"Ask for {instead!r} instead" in str(info.value)


@pytest.mark.parametrize("word", ["openid", "offline_access", "profile", "email"])
def test_sign_in_scopes_are_refused(word):
    with pytest.raises(ValueError, match="sign-in scope for users"):
        resolve_resource(word)
