"""The doctor's proxy masking: no credential in its output whatever the proxy value, never an exception."""

from __future__ import annotations

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from mi_notebook.cli import main
from mi_notebook.commands._proxies import mask_proxy, proxy_lines
from mi_notebook.commands.doctor import mask_proxy as doctor_mask_proxy

pytestmark = pytest.mark.usefixtures("clean_connection")

SCHEMES = st.sampled_from(["", "http://", "https://", "socks5://", "socks5h://", "HTTP://"])
HOSTS = st.one_of(
    st.sampled_from(["proxy", "proxy.corp.example", "10.0.0.1", "[::1]", "[2001:db8::8a2e:370:7334]", "[fe80::1%25eth0]"]),
    st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z]{2,8}){0,3}", fullmatch=True),
)
PORTS = st.one_of(st.just(""), st.integers(min_value=-5, max_value=10**7).map(lambda p: f":{p}"),
                  st.text(max_size=6).map(lambda t: f":{t}"))
PATHS = st.sampled_from(["", "/", "/proxy", "/a?b=c"])
# a secret: anything printable (including '@', ':', '/', '://'); user names may be tokens too
SECRETS = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF, blacklist_characters="*"),
                  min_size=1, max_size=40)


def _visible(text: str) -> str:
    return "".join("?" if ord(c) < 32 or 127 <= ord(c) <= 159 else c for c in text)


@settings(max_examples=500, deadline=None)
@given(scheme=SCHEMES, user=SECRETS, password=st.one_of(st.none(), SECRETS), host=HOSTS, port=PORTS, path=PATHS)
@example(scheme="", user="user", password="s3cret", host="proxy", port=":3128", path="")
@example(scheme="http://", user="tok3n", password=None, host="proxy", port=":3128", path="")
@example(scheme="http://", user="user", password="s3cret", host="proxy", port=":99999", path="")
@example(scheme="", user="user", password="pa://ss", host="10.0.0.1", port=":3128", path="")
@example(scheme="http://", user="u", password="p@ss/w#rd?x", host="[::1]", port=":3128", path="")
def test_no_credential_ever_appears(scheme, user, password, host, port, path):
    userinfo = user if password is None else f"{user}:{password}"
    secret = user if password is None else password
    kept = f"{scheme}***@{host}{port}{path}"
    assume(_visible(secret) not in _visible(kept))  # a "secret" that is also a host name or a port says nothing
    value = f"{scheme}{userinfo}@{host}{port}{path}"
    masked = mask_proxy(value)
    assert _visible(secret) not in masked and secret not in masked
    if password is not None:
        assert _visible(user) in kept or user not in masked  # the user name goes too: it may be a token
    if "@" not in f"{host}{port}{path}":
        assert masked == _visible(kept)  # scheme, host (brackets kept), port and path as written


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(), st.binary().map(lambda b: b.decode("latin-1")), st.none(), st.integers()))
def test_masking_never_raises_and_never_adds_lines(value):
    masked = mask_proxy(value)
    assert isinstance(masked, str) and "\n" not in masked and "\r" not in masked


@pytest.mark.parametrize(("value", "shown"), [
    ("user:s3cret@proxy:3128", "***@proxy:3128"),
    ("http://tok3n@proxy:3128", "http://***@proxy:3128"),
    ("http://user:s3cret@[::1]:3128", "http://***@[::1]:3128"),
    ("http://user:s3cret@proxy:99999", "http://***@proxy:99999"),
    ("http://proxy.corp.example:3128", "http://proxy.corp.example:3128"),
    ("http://[2001:db8::1]:8080/", "http://[2001:db8::1]:8080/"),
    ("http://user:s3cret@proxy:3128\nFAKE=line", "http://***@proxy:3128?FAKE=line"),
])
def test_the_security_reviews_forms(value, shown):
    assert mask_proxy(value) == shown == doctor_mask_proxy(value)


def test_proxy_lines_mask_every_variable_and_no_proxy():
    env = {"HTTPS_PROXY": "user:s3cret@proxy:3128", "http_proxy": "http://tok3n@proxy:3128",
           "ALL_PROXY": "socks5://u:pw0rd@[::1]:1080", "NO_PROXY": "169.254.169.254,secret:pw@x"}
    text = "\n".join(proxy_lines(env))
    for secret in ("s3cret", "tok3n", "pw0rd", "secret:pw"):
        assert secret not in text
    assert "ALL_PROXY=socks5://***@[::1]:1080" in text and "covers 169.254.169.254" in text


@pytest.mark.parametrize("proxy", ["user:s3cret@proxy.invalid:3128", "http://s3cret@proxy.invalid:3128",
                                   "http://user:s3cret@proxy.invalid:99999", "http://user:s3cret@[::1]:3128"])
def test_doctor_output_holds_no_proxy_credential_and_does_not_stop(transport_emu, capsys, monkeypatch, proxy):
    monkeypatch.setenv("HTTPS_PROXY", proxy)
    monkeypatch.setenv("NO_PROXY", "169.254.169.254")
    code = main(["doctor", "--imds-url", transport_emu.imds_url])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "s3cret" not in out + err and "HTTPS_PROXY=" in out
    assert "invalid input" not in err and "Traceback" not in err
