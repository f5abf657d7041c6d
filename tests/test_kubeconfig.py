"""Kubeconfig loading like kubectl: loading rules, merging, contexts, paths, TLS, errors."""

from __future__ import annotations

import base64
import logging
import ssl
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from helpers.certs import CA, Pair

from trio_controller import config as kubeconfig
from trio_controller.auth import BasicAuth, BearerTokenAuth, ExecAuth, TokenFileAuth
from trio_controller.config import ClusterConfig, load_config
from trio_controller.errors import KubeconfigError
from trio_controller.transport import tls
from trio_controller.transport.tls import build_ssl_context

SECRET = "s3cr3t-token-value"


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA()


@pytest.fixture(scope="module")
def rsa_client(ca: CA) -> Pair:
    return ca.issue("alice", key_type="rsa")


@pytest.fixture(scope="module")
def ec_client(ca: CA) -> Pair:
    return ca.issue("bob", key_type="ec")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write(
    path: Path,
    *,
    clusters: dict[str, dict[str, Any]] | None = None,
    users: dict[str, dict[str, Any]] | None = None,
    contexts: dict[str, dict[str, Any]] | None = None,
    current: str | None = None,
) -> Path:
    doc: dict[str, Any] = {"apiVersion": "v1", "kind": "Config"}
    if clusters is not None:
        doc["clusters"] = [{"name": k, "cluster": v} for k, v in clusters.items()]
    if users is not None:
        doc["users"] = [{"name": k, "user": v} for k, v in users.items()]
    if contexts is not None:
        doc["contexts"] = [{"name": k, "context": v} for k, v in contexts.items()]
    if current is not None:
        doc["current-context"] = current
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


def simple(path: Path, server: str = "https://a.example:6443", **user: Any) -> Path:
    return write(
        path,
        clusters={"c": {"server": server}},
        users={"u": user or {"token": SECRET}},
        contexts={"ctx": {"cluster": "c", "user": "u"}},
        current="ctx",
    )


def load(path: Path, **kw: Any) -> ClusterConfig:
    return load_config(path, environ={}, **kw)


# -- loading rules -------------------------------------------------------------------------


def test_explicit_path_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(KubeconfigError, match=r"nope\.yaml: file not found"):
        load(missing)


def test_explicit_path_wins_over_kubeconfig_env(tmp_path: Path) -> None:
    a = simple(tmp_path / "a", server="https://a:1")
    b = simple(tmp_path / "b", server="https://b:2")
    config = load_config(a, environ={"KUBECONFIG": str(b)})
    assert config.server == "https://a:1"


async def test_kubeconfig_env_merges_files_first_file_wins(tmp_path: Path) -> None:
    first = write(
        tmp_path / "first",
        clusters={"shared": {"server": "https://first:1"}},
        users={"shared": {"token": "first-token"}},
        contexts={"one": {"cluster": "shared", "user": "shared", "namespace": "ns1"}},
        current="one",
    )
    second = write(
        tmp_path / "second",
        clusters={"shared": {"server": "https://second:2"}, "other": {"server": "https://o:3"}},
        users={"shared": {"token": "second-token"}},
        contexts={
            "one": {"cluster": "other", "user": "shared"},
            "two": {"cluster": "other", "user": "shared", "namespace": "ns2"},
        },
        current="two",
    )
    missing = tmp_path / "missing"
    env = {"KUBECONFIG": f"{missing}:{first}:{second}"}
    config = load_config(environ=env)
    assert (config.server, config.namespace, config.context) == ("https://first:1", "ns1", "one")
    # A context only the second file defines, using the first file's user.
    two = load_config(environ=env, context="two")
    assert (two.server, two.namespace) == ("https://o:3", "ns2")
    assert isinstance(two.auth, BearerTokenAuth)
    assert (await two.auth.credentials()).authorization == "Bearer first-token"


def test_current_context_comes_from_the_first_file_that_sets_it(tmp_path: Path) -> None:
    first = write(tmp_path / "first", clusters={"c": {"server": "https://one:1"}})
    second = write(
        tmp_path / "second",
        clusters={"d": {"server": "https://two:2"}},
        contexts={"x": {"cluster": "d"}},
        current="x",
    )
    config = load_config(environ={"KUBECONFIG": f"{first}:{second}"})
    assert config.server == "https://two:2"


def test_home_kube_config_is_the_default(tmp_path: Path) -> None:
    simple(tmp_path / ".kube" / "config", server="https://home:443")
    assert load_config(environ={}, home=tmp_path).server == "https://home:443"


def test_in_cluster_is_the_last_resort(tmp_path: Path) -> None:
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text(SECRET + "\n")
    (sa / "namespace").write_text("kube-system")
    (sa / "ca.crt").write_bytes(CA().cert_pem)
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    config = load_config(environ=env, home=tmp_path / "nohome", in_cluster_dir=sa)
    assert config.server == "https://10.0.0.1:443"
    assert config.namespace == "kube-system"
    assert config.source == "in-cluster"
    assert config.tls.ca_pem is not None
    assert isinstance(config.auth, TokenFileAuth)
    assert config.auth.path == sa / "token"


def test_in_cluster_ipv6_host_is_bracketed(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t")
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    config = kubeconfig.in_cluster_config(environ=env, directory=tmp_path)
    assert config.server == "https://[fd00::1]:443"
    assert config.namespace == "default"


def test_in_cluster_without_token_is_a_clear_error(tmp_path: Path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    with pytest.raises(KubeconfigError, match=r"in-cluster token: .*token: file not found"):
        kubeconfig.in_cluster_config(environ=env, directory=tmp_path)


def test_no_configuration_anywhere_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match="no configuration found"):
        load_config(environ={}, home=tmp_path)


def test_kubeconfig_env_with_only_missing_files_is_a_clear_error(tmp_path: Path) -> None:
    env = {"KUBECONFIG": str(tmp_path / "a")}
    with pytest.raises(KubeconfigError, match=r"KUBECONFIG files .*a not found"):
        load_config(environ=env, home=tmp_path)


# -- contexts, namespace, master -----------------------------------------------------------


def test_context_override_selects_another_context(tmp_path: Path) -> None:
    path = write(
        tmp_path / "k",
        clusters={"a": {"server": "https://a:1"}, "b": {"server": "https://b:2"}},
        contexts={"ca": {"cluster": "a"}, "cb": {"cluster": "b", "namespace": "team"}},
        current="ca",
    )
    config = load(path, context="cb")
    assert (config.server, config.namespace, config.context) == ("https://b:2", "team", "cb")


def test_unknown_context_names_it(tmp_path: Path) -> None:
    path = simple(tmp_path / "k")
    with pytest.raises(KubeconfigError, match="context 'ghost' not found"):
        load(path, context="ghost")


def test_namespace_defaults_to_default_and_can_be_overridden(tmp_path: Path) -> None:
    path = simple(tmp_path / "k")
    assert load(path).namespace == "default"
    assert load(path, namespace="other").namespace == "other"


def test_master_overrides_the_server(tmp_path: Path) -> None:
    path = simple(tmp_path / "k")
    assert load(path, master="https://override:7443").server == "https://override:7443"


def test_server_without_scheme_means_https(tmp_path: Path) -> None:
    assert load(simple(tmp_path / "k", server="host:6443")).server == "https://host:6443"


def test_no_current_context_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path / "k", clusters={"c": {"server": "https://a"}})
    with pytest.raises(KubeconfigError, match="current-context is not set"):
        load(path)


def test_context_with_missing_cluster_or_user_is_named(tmp_path: Path) -> None:
    path = write(
        tmp_path / "k",
        clusters={"c": {"server": "https://a"}},
        contexts={"x": {"cluster": "gone"}, "y": {"cluster": "c", "user": "nobody"}},
        current="x",
    )
    with pytest.raises(KubeconfigError, match="cluster 'gone' not found"):
        load(path)
    with pytest.raises(KubeconfigError, match="user 'nobody' not found"):
        load(path, context="y")


def test_cluster_without_server_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "k", clusters={"c": {}}, contexts={"x": {"cluster": "c"}}, current="x")
    with pytest.raises(KubeconfigError, match=r"clusters\[c\] has no server"):
        load(path)


# -- file problems -------------------------------------------------------------------------


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_text("apiVersion: v1\nclusters:\n  - name: [unclosed\n")
    with pytest.raises(KubeconfigError, match=r"k: invalid YAML at line \d+") as info:
        load(path)
    assert "\n" not in str(info.value)


def test_yaml_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_text("- a\n- b\n")
    with pytest.raises(KubeconfigError, match="not a kubeconfig"):
        load(path)


def test_libyaml_loader_is_used_when_available() -> None:
    if getattr(yaml, "CSafeLoader", None) is not None:
        assert kubeconfig.kubeconfig._Loader is yaml.CSafeLoader


def test_missing_certificate_file_names_field_and_path(tmp_path: Path) -> None:
    path = write(
        tmp_path / "k",
        clusters={"c": {"server": "https://a", "certificate-authority": "ca.crt"}},
        contexts={"x": {"cluster": "c"}},
        current="x",
    )
    with pytest.raises(KubeconfigError) as info:
        load(path)
    message = str(info.value)
    assert "clusters[c].certificate-authority" in message
    assert str(tmp_path / "ca.crt") in message and "file not found" in message


def test_invalid_base64_data_is_named(tmp_path: Path) -> None:
    path = simple(tmp_path / "k", **{"client-certificate-data": "!!!", "client-key-data": "xx"})
    with pytest.raises(KubeconfigError, match=r"users\[u\]\.client-certificate-data"):
        load(path)


def test_certificate_without_key_is_rejected(tmp_path: Path, rsa_client: Pair) -> None:
    path = simple(tmp_path / "k", **{"client-certificate-data": b64(rsa_client.cert_pem)})
    with pytest.raises(KubeconfigError, match=r"client-key\(-data\) is missing"):
        load(path)


# -- relative paths ------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_defining_file(
    tmp_path: Path, ca: CA, ec_client: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "conf" / "sub"
    folder.mkdir(parents=True)
    (folder / "ca.crt").write_bytes(ca.cert_pem)
    ec_client.write(folder, "client")
    (folder / "token").write_text(SECRET)
    clusters = {"c": {"server": "https://a", "certificate-authority": "ca.crt"}}
    users = {
        "cert": {"client-certificate": "client.crt", "client-key": "./client.key"},
        "tok": {"tokenFile": "token"},
        "exec": {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": "./bin/plugin",
                "interactiveMode": "Never",
            }
        },
        "execpath": {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": "kubelogin",
            }
        },
    }
    contexts = {name: {"cluster": "c", "user": name} for name in users}
    path = write(
        folder / "config", clusters=clusters, users=users, contexts=contexts, current="cert"
    )
    monkeypatch.chdir(tmp_path)  # relative to the file, not the working directory

    config = load_config(Path("conf/sub/config"), environ={})
    assert config.tls.ca_pem == ca.cert_pem
    assert config.tls.cert_pem == ec_client.cert_pem
    assert config.tls.key_pem == ec_client.key_pem
    tok = load(path, context="tok")
    assert isinstance(tok.auth, TokenFileAuth)
    assert tok.auth.path.resolve() == (folder / "token").resolve()
    exe = load(path, context="exec")
    assert isinstance(exe.auth, ExecAuth)
    assert Path(exe.auth.config.command).resolve() == (folder / "bin" / "plugin").resolve()
    bare = load(path, context="execpath")
    assert isinstance(bare.auth, ExecAuth)
    assert bare.auth.config.command == "kubelogin"  # looked up on PATH
    assert bare.auth.config.interactive_mode == "IfAvailable"  # v1beta1 default


def test_each_file_resolves_its_own_relative_paths(tmp_path: Path, ca: CA) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "ca.crt").write_bytes(ca.cert_pem)
    first = write(tmp_path / "one" / "config", contexts={"x": {"cluster": "c"}}, current="x")
    write(
        tmp_path / "two" / "config",
        clusters={"c": {"server": "https://a", "certificate-authority": "ca.crt"}},
    )
    config = load_config(environ={"KUBECONFIG": f"{first}:{tmp_path / 'two' / 'config'}"})
    assert config.tls.ca_pem == ca.cert_pem
    assert config.tls.ca_source is not None and "two" in config.tls.ca_source


# -- TLS -----------------------------------------------------------------------------------


@pytest.mark.parametrize("client", ["rsa_client", "ec_client"])
def test_certificate_data_builds_an_ssl_context(
    tmp_path: Path, ca: CA, client: str, request: pytest.FixtureRequest
) -> None:
    pair: Pair = request.getfixturevalue(client)
    path = write(
        tmp_path / "k",
        clusters={"c": {"server": "https://a", "certificate-authority-data": b64(ca.cert_pem)}},
        users={
            "u": {
                "client-certificate-data": b64(pair.cert_pem),
                "client-key-data": b64(pair.key_pem),
            }
        },
        contexts={"x": {"cluster": "c", "user": "u"}},
        current="x",
    )
    config = load(path)
    assert config.auth is None
    ctx = build_ssl_context(config.tls)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert len(ctx.get_ca_certs()) == 1


def test_pkcs8_keys_are_accepted(ca: CA) -> None:
    pair = ca.issue("carol", key_type="rsa", key_format=serialization.PrivateFormat.PKCS8)
    tls = kubeconfig.TLSConfig(cert_pem=pair.cert_pem, key_pem=pair.key_pem)
    build_ssl_context(tls)


def test_without_a_ca_the_system_roots_are_used() -> None:
    ctx = build_ssl_context(kubeconfig.TLSConfig())
    assert ctx.verify_mode == ssl.CERT_REQUIRED


def test_unparsable_pem_is_named_and_key_never_shown(ca: CA, rsa_client: Pair) -> None:
    with pytest.raises(KubeconfigError, match="certificate-authority-data: not a PEM"):
        build_ssl_context(
            kubeconfig.TLSConfig(ca_pem=b"garbage", ca_source="certificate-authority-data")
        )
    with pytest.raises(KubeconfigError, match="client-certificate: not a PEM certificate"):
        build_ssl_context(kubeconfig.TLSConfig(cert_pem=b"junk", key_pem=rsa_client.key_pem))
    broken_key = rsa_client.key_pem[:120] + b"\n-----END RSA PRIVATE KEY-----\n"
    with pytest.raises(KubeconfigError, match="client-key: not a PEM private key") as info:
        build_ssl_context(kubeconfig.TLSConfig(cert_pem=rsa_client.cert_pem, key_pem=broken_key))
    assert "MII" not in str(info.value)


def test_mismatched_certificate_and_key_are_named(rsa_client: Pair, ec_client: Pair) -> None:
    tls = kubeconfig.TLSConfig(cert_pem=rsa_client.cert_pem, key_pem=ec_client.key_pem)
    with pytest.raises(KubeconfigError, match="do not match"):
        build_ssl_context(tls)


def test_encrypted_key_is_named(ca: CA, rsa_client: Pair) -> None:
    key = serialization.load_pem_private_key(rsa_client.key_pem, None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    tls = kubeconfig.TLSConfig(cert_pem=rsa_client.cert_pem, key_pem=encrypted)
    with pytest.raises(KubeconfigError, match="encrypted"):
        build_ssl_context(tls)


def test_insecure_skip_tls_verify_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tls, "_warned_insecure", False)
    path = write(
        tmp_path / "k",
        clusters={"c": {"server": "https://a", "insecure-skip-tls-verify": True}},
        contexts={"x": {"cluster": "c"}},
        current="x",
    )
    config = load(path)
    with caplog.at_level(logging.WARNING, logger="trio_controller.transport.tls"):
        ctx = build_ssl_context(config.tls)
        build_ssl_context(config.tls)
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname
    warnings = [r for r in caplog.records if "insecure-skip-tls-verify" in r.getMessage()]
    assert len(warnings) == 1


def test_insecure_with_a_ca_is_rejected(tmp_path: Path, ca: CA) -> None:
    cluster = {
        "server": "https://a",
        "insecure-skip-tls-verify": True,
        "certificate-authority-data": b64(ca.cert_pem),
    }
    path = write(
        tmp_path / "k", clusters={"c": cluster}, contexts={"x": {"cluster": "c"}}, current="x"
    )
    with pytest.raises(KubeconfigError, match="cannot be used together"):
        load(path)


def test_tls_server_name_proxy_and_compression_are_carried(tmp_path: Path) -> None:
    cluster = {
        "server": "https://10.1.2.3:6443",
        "tls-server-name": "kubernetes.default",
        "proxy-url": "http://proxy.local:3128",
        "disable-compression": True,
    }
    path = write(
        tmp_path / "k", clusters={"c": cluster}, contexts={"x": {"cluster": "c"}}, current="x"
    )
    config = load(path)
    assert config.tls.server_name == "kubernetes.default"
    assert config.proxy == "http://proxy.local:3128"
    assert config.disable_compression


def test_unsupported_proxy_scheme_is_named(tmp_path: Path) -> None:
    cluster = {"server": "https://a", "proxy-url": "ftp://p"}
    path = write(
        tmp_path / "k", clusters={"c": cluster}, contexts={"x": {"cluster": "c"}}, current="x"
    )
    with pytest.raises(KubeconfigError, match=r"proxy-url: unsupported proxy scheme 'ftp'"):
        load(path)


# -- auth ----------------------------------------------------------------------------------


def test_token_becomes_a_bearer_auth_that_hides_the_token(tmp_path: Path) -> None:
    config = load(simple(tmp_path / "k"))
    assert isinstance(config.auth, BearerTokenAuth)
    assert SECRET not in repr(config)


def test_token_file_is_read_and_must_exist(tmp_path: Path) -> None:
    (tmp_path / "tok").write_text(SECRET)
    assert isinstance(load(simple(tmp_path / "k", tokenFile="tok")).auth, TokenFileAuth)
    with pytest.raises(KubeconfigError, match=r"users\[u\]\.tokenFile: .*gone: file not found"):
        load(simple(tmp_path / "k2", tokenFile="gone"))


def test_basic_auth_and_token_conflict(tmp_path: Path) -> None:
    basic = load(simple(tmp_path / "k", username="admin", password=SECRET))
    assert isinstance(basic.auth, BasicAuth)
    assert SECRET not in repr(basic.auth)
    with pytest.raises(KubeconfigError, match="more than one authentication method"):
        load(simple(tmp_path / "k2", token="t", username="admin", password="p"))


def test_exec_config_is_parsed_with_cluster_info(tmp_path: Path, ca: CA) -> None:
    cluster = {
        "server": "https://a:6443",
        "certificate-authority-data": b64(ca.cert_pem),
        "tls-server-name": "api.internal",
        "extensions": [
            {"name": "client.authentication.k8s.io/exec", "extension": {"audience": "x"}}
        ],
    }
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "/usr/bin/get-token",
            "args": ["--flag", "v"],
            "env": [{"name": "FOO", "value": "bar"}],
            "provideClusterInfo": True,
            "interactiveMode": "Never",
            "installHint": "install get-token",
        }
    }
    path = write(
        tmp_path / "k",
        clusters={"c": cluster},
        users={"u": user},
        contexts={"x": {"cluster": "c", "user": "u"}},
        current="x",
    )
    auth = load(path).auth
    assert isinstance(auth, ExecAuth)
    cfg = auth.config
    assert cfg.args == ("--flag", "v") and cfg.env == (("FOO", "bar"),)
    assert cfg.provide_cluster_info and cfg.install_hint == "install get-token"
    assert cfg.cluster == {
        "server": "https://a:6443",
        "tls-server-name": "api.internal",
        "certificate-authority-data": b64(ca.cert_pem),
        "config": {"audience": "x"},
    }


def test_exec_v1_requires_interactive_mode_and_a_known_api_version(tmp_path: Path) -> None:
    spec = {"apiVersion": "client.authentication.k8s.io/v1", "command": "x"}
    with pytest.raises(KubeconfigError, match="interactiveMode is required"):
        load(simple(tmp_path / "k", exec=spec))
    spec = {"apiVersion": "client.authentication.k8s.io/v1alpha1", "command": "x"}
    with pytest.raises(KubeconfigError, match=r"exec\.apiVersion must be one of"):
        load(simple(tmp_path / "k2", exec=spec))


def test_token_wins_over_exec_like_client_go(tmp_path: Path) -> None:
    spec = {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "x"}
    config = load(simple(tmp_path / "k", token=SECRET, exec=spec))
    assert isinstance(config.auth, BearerTokenAuth)


def test_auth_provider_is_reported_as_unsupported(tmp_path: Path) -> None:
    path = simple(tmp_path / "k", **{"auth-provider": {"name": "gcp", "config": {}}})
    with pytest.raises(KubeconfigError, match="auth-provider 'gcp' is not supported"):
        load(path)
