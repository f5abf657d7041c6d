"""Kubeconfig loading like kubectl's, to one `ClusterConfig`.

Loading rules (client-go clientcmd):
1. an explicit path (`--kubeconfig`) must exist and is the only file read;
2. else the `KUBECONFIG` path list, merged: for each named cluster, user and context,
   and for `current-context`, the first file that sets it wins; missing files are skipped;
3. else `~/.kube/config`;
4. else, if nothing was found, the in-cluster service account
   (`KUBERNETES_SERVICE_HOST`/`_PORT` and /var/run/secrets/kubernetes.io/serviceaccount).

Relative paths (certificate-authority, client-certificate, client-key, tokenFile, an exec
command containing a slash) resolve against the directory of the file that defined them.
Every problem is a `KubeconfigError` whose message is one line naming the file and field,
never a credential.
"""

from __future__ import annotations

import base64
import binascii
import importlib.util
import ipaddress
import logging
import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import idna

from trio_controller.auth import (
    EXEC_API_VERSIONS,
    BasicAuth,
    BearerTokenAuth,
    CredentialProvider,
    ExecAuth,
    ExecConfig,
    TokenFileAuth,
)
from trio_controller.config.cluster import ClusterConfig, TLSConfig
from trio_controller.errors import KubeconfigError

__all__ = ["IN_CLUSTER_DIR", "in_cluster_config", "load_config"]

log = logging.getLogger(__name__)

IN_CLUSTER_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
EXEC_EXTENSION = "client.authentication.k8s.io/exec"


def _yaml_loader() -> Any:
    """libyaml's safe loader where PyYAML has it; PyYAML is imported on first use."""
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def __getattr__(name: str) -> Any:
    if name == "_Loader":  # the loader, resolved (and PyYAML imported) when asked
        return _yaml_loader()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- loading rules -------------------------------------------------------------------------


def load_config(
    kubeconfig: str | os.PathLike[str] | None = None,
    *,
    context: str | None = None,
    master: str | None = None,
    namespace: str | None = None,
    environ: Mapping[str, str] | None = None,
    home: str | os.PathLike[str] | None = None,
    in_cluster_dir: str | os.PathLike[str] | None = None,
) -> ClusterConfig:
    """Load the configuration kubectl would use.

    `context`, `master` and `namespace` override the kubeconfig (`--context`, `--master`,
    `--namespace`). `environ`, `home` and `in_cluster_dir` default to the process's
    environment, home directory and the service-account directory (tests override them).
    """
    env = os.environ if environ is None else environ
    if kubeconfig is not None:
        path = _expand(Path(kubeconfig))
        merged = _Merged()
        merged.add(path, _read_file(path, required=True) or {})
        return merged.resolve(context=context, master=master, namespace=namespace)

    raw = env.get("KUBECONFIG", "")
    if raw:
        paths = _dedupe(_expand(Path(p)) for p in raw.split(os.pathsep) if p)
        searched = "KUBECONFIG files " + ", ".join(map(str, paths))
    else:
        base = Path(home) if home is not None else Path.home()
        paths = [base / ".kube" / "config"]
        searched = str(paths[0])
    merged = _Merged()
    for path in paths:
        doc = _read_file(path, required=False)
        if doc is not None:
            merged.add(path, doc)
    if not merged.empty():
        return merged.resolve(context=context, master=master, namespace=namespace)
    if env.get("KUBERNETES_SERVICE_HOST") and env.get("KUBERNETES_SERVICE_PORT"):
        return in_cluster_config(
            environ=env, directory=in_cluster_dir, master=master, namespace=namespace
        )
    raise KubeconfigError(
        f"no configuration found: {searched} not found (or empty), and not running in a cluster"
    )


def in_cluster_config(
    *,
    environ: Mapping[str, str] | None = None,
    directory: str | os.PathLike[str] | None = None,
    master: str | None = None,
    namespace: str | None = None,
) -> ClusterConfig:
    """The service-account configuration of a pod (token re-read as it rotates)."""
    env = os.environ if environ is None else environ
    host = env.get("KUBERNETES_SERVICE_HOST", "")
    port = env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise KubeconfigError(
            "in-cluster configuration needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT"
        )
    sa = Path(directory) if directory is not None else IN_CLUSTER_DIR
    token_path = sa / "token"
    if not _read_bytes(token_path, "in-cluster token").strip():
        raise KubeconfigError(f"in-cluster token: {token_path}: file is empty")
    auth = TokenFileAuth(token_path)
    ca_pem = None
    ca_path = sa / "ca.crt"
    if ca_path.exists():
        ca_pem = _read_bytes(ca_path, "in-cluster certificate-authority")
    ns = namespace
    if ns is None:
        try:
            ns = (sa / "namespace").read_text().strip() or None
        except OSError:
            ns = None
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6
    server = master or f"https://{host}:{port}"
    return ClusterConfig(
        server=_normalize_server(server, "in-cluster"),
        namespace=ns or "default",
        tls=TLSConfig(ca_pem=ca_pem, ca_source=str(ca_path) if ca_pem else None),
        auth=auth,
        source="in-cluster",
    )


def _dedupe(paths: Any) -> list[Path]:
    seen: set[Path] = set()
    out = []
    for p in paths:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def _read_file(path: Path, *, required: bool) -> dict[str, Any] | None:
    """Parse one kubeconfig file; None if it does not exist and is not `required`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if not required:
            return None
        raise KubeconfigError(f"kubeconfig {path}: file not found") from None
    except OSError as exc:
        raise KubeconfigError(f"kubeconfig {path}: cannot read: {exc.strerror or exc}") from None
    except ValueError:  # a NUL byte in the path
        raise KubeconfigError(f"kubeconfig {str(path)!r}: invalid path") from None
    import yaml  # only a program that reads a kubeconfig pays for it

    try:
        doc = yaml.load(data, Loader=_yaml_loader())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise KubeconfigError(f"kubeconfig {path}: invalid YAML{where}: {problem}") from None
    except (ValueError, TypeError, AttributeError, OverflowError, RecursionError) as exc:
        # What PyYAML's constructors raise for values its resolver accepts but Python
        # cannot build: `2001-13-45` as a date, `!!timestamp` on a non-date, an integer
        # of more than 4300 digits, nesting deeper than the stack.
        problem = str(exc).split(";")[0] or type(exc).__name__
        raise KubeconfigError(f"kubeconfig {path}: invalid YAML: {problem}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise KubeconfigError(f"kubeconfig {path}: not a kubeconfig (expected a mapping)")
    return doc


class _Merged:
    """Named entries of several files; the first file to define a name wins."""

    def __init__(self) -> None:
        self.files: list[Path] = []
        self.clusters: dict[str, tuple[dict[str, Any], Path]] = {}
        self.users: dict[str, tuple[dict[str, Any], Path]] = {}
        self.contexts: dict[str, tuple[dict[str, Any], Path]] = {}
        self.current_context: tuple[str, Path] | None = None

    def empty(self) -> bool:
        return not (self.clusters or self.users or self.contexts or self.current_context)

    def add(self, path: Path, doc: dict[str, Any]) -> None:
        self.files.append(path)
        for section, inner, table in (
            ("clusters", "cluster", self.clusters),
            ("users", "user", self.users),
            ("contexts", "context", self.contexts),
        ):
            items = doc.get(section) or []
            if not isinstance(items, list):
                raise KubeconfigError(f"kubeconfig {path}: {section} must be a list")
            for i, item in enumerate(items):
                if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                    raise KubeconfigError(f"kubeconfig {path}: {section}[{i}] has no name")
                body = item.get(inner) or {}
                if not isinstance(body, dict):
                    raise KubeconfigError(
                        f"kubeconfig {path}: {section}[{item['name']}].{inner} must be a mapping"
                    )
                table.setdefault(item["name"], (body, path))
        current = doc.get("current-context")
        if current and self.current_context is None:
            self.current_context = (str(current), path)

    def resolve(
        self, *, context: str | None, master: str | None, namespace: str | None
    ) -> ClusterConfig:
        source = ", ".join(map(str, self.files))
        name = context or (self.current_context[0] if self.current_context else None)
        if not name:
            if master:
                return ClusterConfig(
                    server=_normalize_server(master, "--master"),
                    namespace=namespace or "default",
                    source=source,
                )
            raise KubeconfigError(
                f"kubeconfig {source}: current-context is not set (choose one with --context)"
            )
        if name not in self.contexts:
            raise KubeconfigError(f"kubeconfig {source}: context {name!r} not found")
        ctx, ctx_file = self.contexts[name]
        cluster_name = _opt_str(ctx, "cluster", f"kubeconfig {ctx_file}: contexts[{name}]")
        user_name = _opt_str(ctx, "user", f"kubeconfig {ctx_file}: contexts[{name}]")
        ns = namespace or _opt_str(ctx, "namespace", f"kubeconfig {ctx_file}: contexts[{name}]")

        if cluster_name and cluster_name in self.clusters:
            cluster, cluster_file = self.clusters[cluster_name]
            cluster_where = f"kubeconfig {cluster_file}: clusters[{cluster_name}]"
        elif master:
            cluster, cluster_file, cluster_where = {}, ctx_file, "--master"
        else:
            what = f"cluster {cluster_name!r}" if cluster_name else "no cluster"
            raise KubeconfigError(
                f"kubeconfig {ctx_file}: context {name!r} refers to {what} not found in kubeconfig"
            )
        server, tls, proxy, exec_cluster = _cluster_settings(
            cluster, cluster_file, cluster_where, master
        )

        user: dict[str, Any] = {}
        user_file = ctx_file
        user_where = f"kubeconfig {ctx_file}: users[{user_name}]"
        if user_name:
            if user_name not in self.users:
                raise KubeconfigError(
                    f"kubeconfig {ctx_file}: context {name!r} refers to user {user_name!r} "
                    "not found in kubeconfig"
                )
            user, user_file = self.users[user_name]
            user_where = f"kubeconfig {user_file}: users[{user_name}]"
        tls, auth = _user_settings(user, user_file, user_where, tls, exec_cluster)
        return ClusterConfig(
            server=server,
            namespace=ns or "default",
            tls=tls,
            auth=auth,
            proxy=proxy,
            disable_compression=exec_cluster.get("disable-compression", False),
            context=name,
            source=source,
        )


# -- fields --------------------------------------------------------------------------------


def _opt_str(obj: dict[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, dict | list):
        raise KubeconfigError(f"{where}.{key} must be a string")
    return str(value)


def _opt_bool(obj: dict[str, Any], key: str, where: str) -> bool:
    value = obj.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise KubeconfigError(f"{where}.{key} must be true or false")
    return value


def _expand(path: Path) -> Path:
    """`~` and `~user` expanded; kept as written if there is no such home directory."""
    try:
        return path.expanduser()
    except RuntimeError:
        return path


def _resolve(path: str, defined_in: Path) -> Path:
    p = _expand(Path(path))
    return p if p.is_absolute() else defined_in.parent / p


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise KubeconfigError(f"{what}: {path}: file not found") from None
    except OSError as exc:
        raise KubeconfigError(f"{what}: {path}: cannot read: {exc.strerror or exc}") from None
    except ValueError:  # a NUL byte in the path
        raise KubeconfigError(f"{what}: {str(path)!r}: invalid path") from None


def _data_or_file(
    obj: dict[str, Any], key: str, where: str, defined_in: Path
) -> tuple[bytes | None, str | None]:
    """`key-data` (base64) or `key` (a path relative to the file); data wins, like kubectl."""
    data = _opt_str(obj, f"{key}-data", where)
    if data is not None:
        try:
            return base64.b64decode("".join(data.split()), validate=True), f"{where}.{key}-data"
        except (binascii.Error, ValueError):
            raise KubeconfigError(f"{where}.{key}-data is not valid base64") from None
    path = _opt_str(obj, key, where)
    if path is not None:
        resolved = _resolve(path, defined_in)
        return _read_bytes(resolved, f"{where}.{key}"), f"{where}.{key} ({resolved})"
    return None, None


def _usable_host(host: str | None) -> bool:
    """An IP literal, or a DNS name the HTTP stack can encode (IDNA 2008, as httpx does;
    labels of 1 to 63 bytes). Anything else would fail later, outside our errors."""
    if not host or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in host):
        return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    try:
        encoded = idna.encode(host) if not host.isascii() else host.encode()
    except (idna.IDNAError, UnicodeError):
        return False
    labels = encoded.rstrip(b".").split(b".")
    return len(encoded) <= 253 and all(0 < len(label) <= 63 for label in labels)


def _has_userinfo(url: str) -> bool:
    return "@" in url.split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0]


def _normalize_server(server: str, where: str) -> str:
    if "://" not in server:
        server = "https://" + server
    if _has_userinfo(server):  # not echoed: it would print the credentials
        raise KubeconfigError(
            f"{where}: the server URL must not carry credentials (use the user's token, "
            "username/password or client certificate)"
        )
    try:
        url = urllib.parse.urlsplit(server)
        _ = url.port  # ValueError if it is not a number in range
    except ValueError:
        raise KubeconfigError(f"{where}: invalid server URL {server!r}") from None
    if (
        url.scheme not in ("http", "https")
        or not _usable_host(url.hostname)
        or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in server)
    ):
        raise KubeconfigError(f"{where}: invalid server URL {server!r}")
    return server.rstrip("/")


def _cluster_settings(
    cluster: dict[str, Any], defined_in: Path, where: str, master: str | None
) -> tuple[str, TLSConfig, str | None, dict[str, Any]]:
    server = master or _opt_str(cluster, "server", where)
    if not server:
        raise KubeconfigError(f"{where} has no server")
    server = _normalize_server(server, "--master" if master else f"{where}.server")
    insecure = _opt_bool(cluster, "insecure-skip-tls-verify", where)
    ca_pem, ca_source = _data_or_file(cluster, "certificate-authority", where, defined_in)
    if insecure and ca_pem is not None:
        raise KubeconfigError(
            f"{where}: certificate-authority and insecure-skip-tls-verify cannot be used together"
        )
    server_name = _opt_str(cluster, "tls-server-name", where)
    if server_name is not None and not _usable_host(server_name):
        raise KubeconfigError(f"{where}.tls-server-name: {server_name!r} is not a host name")
    proxy = _opt_str(cluster, "proxy-url", where)
    if proxy is not None:
        scheme = proxy.split("://", 1)[0].lower() if "://" in proxy else ""
        if scheme not in ("http", "https", "socks5", "socks5h"):
            raise KubeconfigError(f"{where}.proxy-url: unsupported proxy scheme {scheme!r}")
        try:  # not echoed: a proxy URL may carry credentials
            parsed = urllib.parse.urlsplit(proxy)
            _ = parsed.port
        except ValueError:
            parsed = None
        if parsed is None or not _usable_host(parsed.hostname) or not proxy.isprintable():
            raise KubeconfigError(f"{where}.proxy-url: invalid proxy URL")
        if scheme.startswith("socks") and importlib.util.find_spec("socksio") is None:
            raise KubeconfigError(f"{where}.proxy-url: SOCKS proxies need the socksio package")
    disable_compression = _opt_bool(cluster, "disable-compression", where)
    tls = TLSConfig(ca_pem=ca_pem, ca_source=ca_source, insecure=insecure, server_name=server_name)
    # The ExecCredential spec.cluster (client-go's Cluster type, JSON names).
    exec_cluster: dict[str, Any] = {"server": server}
    if server_name:
        exec_cluster["tls-server-name"] = server_name
    if insecure:
        exec_cluster["insecure-skip-tls-verify"] = True
    if ca_pem:
        exec_cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    if proxy:
        exec_cluster["proxy-url"] = proxy
    if disable_compression:
        exec_cluster["disable-compression"] = True
    extensions = cluster.get("extensions") or []
    if not isinstance(extensions, list):
        raise KubeconfigError(f"{where}.extensions must be a list")
    for ext in extensions:
        if isinstance(ext, dict) and ext.get("name") == EXEC_EXTENSION:
            exec_cluster["config"] = ext.get("extension")
    return server, tls, proxy, exec_cluster


def _user_settings(
    user: dict[str, Any],
    defined_in: Path,
    where: str,
    tls: TLSConfig,
    exec_cluster: dict[str, Any],
) -> tuple[TLSConfig, CredentialProvider | None]:
    cert_pem, cert_source = _data_or_file(user, "client-certificate", where, defined_in)
    key_pem, key_source = _data_or_file(user, "client-key", where, defined_in)
    if (cert_pem is None) != (key_pem is None):
        missing = "client-key" if key_pem is None else "client-certificate"
        raise KubeconfigError(f"{where}: {missing}(-data) is missing")
    if cert_pem is not None:
        tls = TLSConfig(
            ca_pem=tls.ca_pem,
            ca_source=tls.ca_source,
            cert_pem=cert_pem,
            cert_source=cert_source,
            key_pem=key_pem,
            key_source=key_source,
            insecure=tls.insecure,
            server_name=tls.server_name,
        )

    token = _opt_str(user, "token", where)
    token_file = _opt_str(user, "tokenFile", where)
    username = _opt_str(user, "username", where)
    password = _opt_str(user, "password", where)
    if (token or token_file) and (username or password):
        raise KubeconfigError(f"{where}: more than one authentication method (token, basic auth)")

    auth: CredentialProvider | None = None
    if token_file:
        path = _resolve(token_file, defined_in)
        if not _read_bytes(path, f"{where}.tokenFile").strip():
            raise KubeconfigError(f"{where}.tokenFile: {path}: file is empty")
        auth = TokenFileAuth(path)
    elif token:
        auth = BearerTokenAuth(token)
    elif username or password:
        auth = BasicAuth(username or "", password or "")

    exec_spec = user.get("exec")
    if exec_spec is not None:
        exec_config = _exec_config(exec_spec, defined_in, f"{where}.exec", exec_cluster)
        # As in client-go: a token, basic auth or client certificate wins over exec.
        if auth is None and cert_pem is None:
            auth = ExecAuth(exec_config)
    elif user.get("auth-provider") is not None and auth is None and cert_pem is None:
        provider = user["auth-provider"]
        name = provider.get("name") if isinstance(provider, dict) else None
        raise KubeconfigError(
            f"{where}: auth-provider {name!r} is not supported; use an exec credential plugin"
        )
    return tls, auth


def _exec_config(
    spec: Any, defined_in: Path, where: str, exec_cluster: dict[str, Any]
) -> ExecConfig:
    if not isinstance(spec, dict):
        raise KubeconfigError(f"{where} must be a mapping")
    command = _opt_str(spec, "command", where)
    if not command:
        raise KubeconfigError(f"{where}.command is missing")
    if "/" in command:
        command = str(_resolve(command, defined_in))
    api_version = _opt_str(spec, "apiVersion", where)
    if api_version not in EXEC_API_VERSIONS:
        raise KubeconfigError(
            f"{where}.apiVersion must be one of {', '.join(EXEC_API_VERSIONS)}, not {api_version!r}"
        )
    args = spec.get("args") or []
    if not isinstance(args, list):
        raise KubeconfigError(f"{where}.args must be a list")
    env_items = spec.get("env") or []
    if not isinstance(env_items, list):
        raise KubeconfigError(f"{where}.env must be a list")
    env = []
    for item in env_items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise KubeconfigError(f"{where}.env entries need a name and a value")
        env.append((item["name"], str(item.get("value") or "")))
    mode = _opt_str(spec, "interactiveMode", where)
    if mode is None:
        if api_version.endswith("/v1"):
            raise KubeconfigError(f"{where}.interactiveMode is required for {api_version}")
        mode = "IfAvailable"
    if mode not in ("Never", "IfAvailable", "Always"):
        raise KubeconfigError(f"{where}.interactiveMode must be Never, IfAvailable or Always")
    return ExecConfig(
        command=command,
        args=tuple(str(a) for a in args),
        env=tuple(env),
        api_version=api_version,
        install_hint=_opt_str(spec, "installHint", where),
        provide_cluster_info=_opt_bool(spec, "provideClusterInfo", where),
        interactive_mode=mode,
        cluster=exec_cluster,
    )
