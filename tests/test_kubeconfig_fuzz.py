"""A hypothesis fuzz of kubeconfig loading: whatever the file holds (wrong types in every
field, missing sections, bad base64 or PEM, odd paths, huge values, YAML that is not a
mapping, anchors, broken text), `load_config` either returns a config the client can be
built from or raises `KubeconfigError` with one line, never a credential; and the CLI
turns the error into one `error:` line and exit 1, never a traceback."""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers.certs import CA
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from trio_controller.config import load_config
from trio_controller.errors import KubeconfigError, TrioControllerError
from trio_controller.programs.pods.cli import main
from trio_controller.transport.client import Client

MARK = "s3cr3t-fuzz"  # every credential value carries it; no message may
_ca = CA("fuzz-ca")
_pair = _ca.issue("fuzz-user", key_type="ec")
CA_PEM, CERT_PEM, KEY_PEM = _ca.cert_pem, _pair.cert_pem, _pair.key_pem
BAD_PEM = b"-----BEGIN CERTIFICATE-----\nMIIBnotreally\n-----END CERTIFICATE-----\n"
BAD_KEY = f"-----BEGIN PRIVATE KEY-----\n{MARK}AAAA\n-----END PRIVATE KEY-----\n".encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


ODD_STRINGS = [
    "",
    " ",
    "~",
    "~no-such-user-fuzz/file",
    "a\x00b",
    "/",
    "/dev/null",
    "x" * 5000,
    "ä/ö\u2603",
    "\t\n",
    "2001-13-45",
    "https://",
    "http://[::1",
    "https://a:99999",
    "https://a b",
    "https://\u2603.example",
    "https://user@host:1/path?q#f",
    "socks5://127.0.0.1:1",
    "ftp://a",
    "-----BEGIN CERTIFICATE-----",
    "!!!not base64!!!",
    "AAAA====",
    "null",
    "*",
    "&",
    "%",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(ODD_STRINGS)
)
anything = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.text(max_size=6) | st.sampled_from(["name", "cluster"]), inner, max_size=3
        )
    ),
    max_leaves=8,
)


def either(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return good | anything


paths = st.sampled_from(
    ["ca.crt", "cert.crt", "key.pem", "junk", "missing", "dir", "../config", "ca.crt/x"]
) | st.sampled_from(ODD_STRINGS)
b64_data = st.sampled_from(
    [
        b64(CA_PEM),
        b64(CERT_PEM),
        b64(KEY_PEM),
        b64(BAD_PEM),
        b64(BAD_KEY),
        b64(CA_PEM)[:-7],
        " ".join(b64(CA_PEM)),
        b64(b"\x00\xff" + MARK.encode()),
        "not base64 at all",
        "",
    ]
) | st.sampled_from(ODD_STRINGS)
servers = st.sampled_from(["https://127.0.0.1:6443", "127.0.0.1:1", "http://a", "https://[::1]:1"])
servers = servers | st.sampled_from(ODD_STRINGS) | st.text(max_size=20)
secrets = st.text(max_size=10).map(lambda s: MARK + s)

cluster = st.fixed_dictionaries(
    {},
    optional={
        "server": either(servers),
        "certificate-authority-data": either(b64_data),
        "certificate-authority": either(paths),
        "insecure-skip-tls-verify": either(st.booleans()),
        "tls-server-name": either(st.sampled_from(["localhost", ""])),
        "proxy-url": either(servers),
        "disable-compression": either(st.booleans()),
        "extensions": either(
            st.lists(
                st.fixed_dictionaries(
                    {"name": st.just("client.authentication.k8s.io/exec"), "extension": anything}
                ),
                max_size=2,
            )
        ),
    },
)
exec_stanza = st.fixed_dictionaries(
    {},
    optional={
        "command": either(st.sampled_from(["plugin", "./plugin", "/bin/true", "~x/p"])),
        "args": either(st.lists(st.text(max_size=5), max_size=3)),
        "env": either(
            st.lists(st.fixed_dictionaries({"name": st.text(max_size=5), "value": secrets}))
        ),
        "apiVersion": either(
            st.sampled_from(
                ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"]
            )
        ),
        "interactiveMode": either(st.sampled_from(["Never", "IfAvailable", "Always"])),
        "installHint": either(st.text(max_size=10)),
        "provideClusterInfo": either(st.booleans()),
    },
)
user = st.fixed_dictionaries(
    {},
    optional={
        "client-certificate-data": either(b64_data),
        "client-key-data": b64_data,  # key material: never `anything` (it may print)
        "client-certificate": either(paths),
        "client-key": either(paths),
        "token": secrets,
        "tokenFile": either(paths),
        "username": either(st.text(max_size=5)),
        "password": secrets,
        "exec": either(exec_stanza),
        "auth-provider": either(st.fixed_dictionaries({"name": st.text(max_size=5)})),
    },
)
context = st.fixed_dictionaries(
    {},
    optional={
        "cluster": either(st.sampled_from(["c", "d"])),
        "user": either(st.sampled_from(["u", "v"])),
        "namespace": either(st.text(max_size=5)),
    },
)


def section(inner_key: str, body: st.SearchStrategy[Any], names: list[str]) -> Any:
    entry = st.fixed_dictionaries(
        {}, optional={"name": either(st.sampled_from(names)), inner_key: either(body)}
    )
    return either(st.lists(entry, max_size=3))


documents = st.fixed_dictionaries(
    {},
    optional={
        "apiVersion": either(st.just("v1")),
        "kind": either(st.just("Config")),
        "clusters": section("cluster", cluster, ["c", "d"]),
        "users": section("user", user, ["u", "v"]),
        "contexts": section("context", context, ["x", "y"]),
        "current-context": either(st.sampled_from(["x", "y", ""])),
        "preferences": anything,
    },
)


def shared(doc: dict[str, Any]) -> dict[str, Any]:
    """Reuse objects so that `yaml.safe_dump` writes anchors and aliases."""
    items = [v for v in doc.values() if isinstance(v, dict | list)]
    if items:
        doc["x-shared"] = items[0]
    return doc


SNIPPETS = [
    "&a ",
    "*a",
    "<<: *a\n",
    "? [a, b]\n: c\n",
    "!!binary ",
    "!!timestamp 2001-13-45",
    "!!python/object:os.system ",
    "!!set {a, b}",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "\t",
    ": ",
    "- ",
    "[",
    "{",
    '"\\x00"',
    "'",
    "\xff",
    "9" * 5000,
    "2001-02-30",
    "2001-01-01 25:00:00",
    "&a [*a]",
]


@st.composite
def texts(draw: st.DrawFn) -> bytes:
    """A kubeconfig as text: a dumped document, maybe cut and spliced with YAML syntax, or
    a top level that is not a mapping."""
    kind = draw(st.sampled_from(["doc", "mutated", "top-level", "snippets"]))
    if kind == "top-level":
        value = draw(st.lists(anything, max_size=3) | scalars)
        return yaml.safe_dump(value).encode()
    if kind == "snippets":
        return "".join(draw(st.lists(st.sampled_from(SNIPPETS), max_size=6))).encode(
            "utf-8", "surrogateescape"
        )
    text = yaml.safe_dump(shared(draw(documents)), allow_unicode=draw(st.booleans()))
    if kind == "mutated":
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(0, len(text)))
            cut = draw(st.integers(0, 20))
            text = text[:at] + draw(st.sampled_from(["", *SNIPPETS])) + text[at + cut :]
    return text.encode("utf-8", "surrogateescape")


@contextlib.contextmanager
def folder() -> Iterator[Path]:
    """The files a kubeconfig may name (each example gets its own)."""
    with tempfile.TemporaryDirectory(prefix="kubeconfig-fuzz-") as tmp:
        root = Path(tmp)
        (root / "ca.crt").write_bytes(CA_PEM)
        (root / "cert.crt").write_bytes(CERT_PEM)
        (root / "key.pem").write_bytes(KEY_PEM)
        (root / "junk").write_bytes(b"\x00junk " + MARK.encode())
        (root / "dir").mkdir()
        (root / "plugin").write_text("#!/bin/sh\nexit 1\n")
        yield root


def check_message(exc: BaseException) -> str:
    message = str(exc)
    assert message and "\n" not in message
    assert MARK not in message
    return message


def load_and_build(path: Path) -> KubeconfigError | None:
    """`load_config`, then the client the CLI would build; only our errors escape."""
    try:
        config = load_config(path, environ={})
    except KubeconfigError as exc:
        check_message(exc)
        return exc
    assert MARK not in repr(config)
    try:
        Client(config)  # TLS material, proxy, server: what the CLI does before connecting
    except TrioControllerError as exc:
        check_message(exc)
    return None


def cli_error_line(path: Path) -> list[str]:
    out, err = io.StringIO(), io.StringIO()
    logger = logging.getLogger("trio_controller")
    saved = (logger.handlers[:], logger.propagate, logger.level)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            assert main(["--kubeconfig", str(path)]) == 1
    finally:
        logger.handlers[:], logger.propagate, logger.level = saved
    assert out.getvalue() == ""
    return err.getvalue().splitlines()


FUZZ = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(texts())
@example(b"current-context: 2001-13-45\n")
@example(b"clusters: [{name: c, cluster: {server: 2001-02-30}}]\n")
@example(b"current-context: " + b"9" * 5000 + b"\n")
def test_any_kubeconfig_loads_or_is_one_kubeconfig_error_line(data: bytes) -> None:
    with folder() as root:
        path = root / "config"
        path.write_bytes(data)
        error = load_and_build(path)
        if error is not None:
            lines = cli_error_line(path)
            assert lines == [f"error: {error}"], lines


CLOSED = "https://127.0.0.1:1"


def valid_base() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "c", "cluster": {"server": CLOSED, "certificate-authority-data": b64(CA_PEM)}}
        ],
        "users": [{"name": "u", "user": {"token": MARK}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }


FIELDS = [
    *(
        ("cluster", f)
        for f in [
            "server",
            "certificate-authority-data",
            "certificate-authority",
            "insecure-skip-tls-verify",
            "tls-server-name",
            "proxy-url",
            "disable-compression",
            "extensions",
        ]
    ),
    *(
        ("user", f)
        for f in [
            "client-certificate-data",
            "client-key-data",
            "client-certificate",
            "client-key",
            "token",
            "tokenFile",
            "username",
            "password",
            "exec",
            "auth-provider",
        ]
    ),
    *(("context", f) for f in ["cluster", "user", "namespace"]),
]
WRONG = [*ODD_STRINGS, None, True, 0, -1, 2**80, 1.5, float("nan"), [], [1], {}, {"a": 1}]


def one_field(where: str, field: str, value: Any) -> dict[str, Any]:
    doc = valid_base()
    section_name = {"cluster": "clusters", "user": "users", "context": "contexts"}[where]
    doc[section_name][0][where][field] = value
    if (where, field) == ("cluster", "insecure-skip-tls-verify"):
        del doc["clusters"][0]["cluster"]["certificate-authority-data"]
    return doc


@pytest.mark.parametrize(("where", "field"), FIELDS, ids=[f"{w}.{f}" for w, f in FIELDS])
def test_every_field_with_every_wrong_value(where: str, field: str) -> None:
    """Each field of an otherwise valid file, set to each odd string and wrong type."""
    with folder() as root:
        path = root / "config"
        for value in WRONG:
            path.write_text(yaml.safe_dump(one_field(where, field, value)))
            error = load_and_build(path)
            if error is not None:
                assert cli_error_line(path) == [f"error: {error}"], value


@FUZZ
@given(st.sampled_from(FIELDS), anything | paths | b64_data | servers)
def test_one_random_field_in_a_valid_kubeconfig(place: tuple[str, str], value: Any) -> None:
    with folder() as root:
        path = root / "config"
        path.write_text(yaml.safe_dump(one_field(*place, value)))
        error = load_and_build(path)
        if error is not None:
            assert cli_error_line(path) == [f"error: {error}"]


@pytest.mark.parametrize("name", ["a\x00b", "~no-such-user-fuzz/config"])
def test_odd_kubeconfig_paths_are_one_kubeconfig_error(name: str, tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError) as info:
        load_config(name, environ={})
    check_message(info.value)
    with pytest.raises(KubeconfigError):
        load_config(environ={"KUBECONFIG": name}, home=tmp_path)


# -- what the fuzz found: one regression test each ------------------------------------------


def load_text(tmp_path: Path, text: str) -> KubeconfigError:
    path = tmp_path / "config"
    path.write_text(text)
    with pytest.raises(KubeconfigError) as info:
        load_config(path, environ={})
    check_message(info.value)
    return info.value


@pytest.mark.parametrize(
    "text",
    [
        "current-context: 2001-13-45\n",  # a date the resolver accepts, Python cannot build
        "current-context: !!timestamp 2001-13-45x\n",  # AttributeError inside PyYAML
        "current-context: " + "9" * 5000 + "\n",  # over Python's int-to-str digit limit
    ],
    ids=["bad-date", "bad-timestamp-tag", "huge-int"],
)
def test_yaml_values_python_cannot_build_are_invalid_yaml(text: str, tmp_path: Path) -> None:
    assert "invalid YAML" in str(load_text(tmp_path, text))


def with_cluster(cluster: dict[str, Any], user: dict[str, Any] | None = None) -> str:
    doc = valid_base()
    doc["clusters"][0]["cluster"] = cluster
    if user is not None:
        doc["users"][0]["user"] = user
    return yaml.safe_dump(doc)


@pytest.mark.parametrize("field", ["certificate-authority", "tokenFile", "client-certificate"])
@pytest.mark.parametrize("value", ["~no-such-user-fuzz/file", "a\x00b"], ids=["tilde", "nul"])
def test_unexpandable_and_nul_paths_are_named(field: str, value: str, tmp_path: Path) -> None:
    if field == "certificate-authority":
        text = with_cluster({"server": CLOSED, field: value})
    else:
        user = {field: value, "client-key": "k"} if field.startswith("client") else {field: value}
        text = with_cluster({"server": CLOSED}, user)
    assert field in str(load_text(tmp_path, text))


def test_extensions_that_are_not_a_list_are_named(tmp_path: Path) -> None:
    text = with_cluster({"server": CLOSED, "extensions": 5})
    assert "extensions must be a list" in str(load_text(tmp_path, text))


@pytest.mark.parametrize(
    "server",
    ["https://\u2603.example", "https://a\x01b", "https://" + "a" * 64 + ".example"],
    ids=["idna-2008", "control-char", "label-too-long"],
)
def test_servers_the_http_stack_cannot_reach_are_invalid_urls(server: str, tmp_path: Path) -> None:
    assert "invalid server URL" in str(load_text(tmp_path, with_cluster({"server": server})))


def test_a_server_url_with_credentials_is_refused_without_printing_them(tmp_path: Path) -> None:
    error = load_text(tmp_path, with_cluster({"server": f"https://admin:{MARK}@127.0.0.1:1"}))
    assert "must not carry credentials" in str(error)


@pytest.mark.parametrize(
    "proxy", ["http://[::1", "http://", "http://:80", "http://\u2603.x", f"http://u:{MARK}@[::1"]
)
def test_unusable_proxy_urls_are_named_without_echoing_them(proxy: str, tmp_path: Path) -> None:
    error = load_text(tmp_path, with_cluster({"server": CLOSED, "proxy-url": proxy}))
    assert str(error).endswith("proxy-url: invalid proxy URL")


def test_a_proxy_with_credentials_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(with_cluster({"server": CLOSED, "proxy-url": "http://u:pw@proxy.local:3128"}))
    assert load_config(path, environ={}).proxy == "http://u:pw@proxy.local:3128"


@pytest.mark.parametrize("name", ["a\x00b", "x" * 300, "a b"])
def test_a_tls_server_name_that_is_no_host_name_is_named(name: str, tmp_path: Path) -> None:
    error = load_text(tmp_path, with_cluster({"server": CLOSED, "tls-server-name": name}))
    assert "tls-server-name" in str(error)
