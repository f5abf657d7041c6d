#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver and etcd, pinned in go.mod) into testenv/bin/.
#
# - KUBEBUILDER_ASSETS naming a folder with both binaries: use those, build nothing.
# - Otherwise the binaries are cached outside the clone, under
#   $HOME/.cache/trio-controller/testenv/<hash of go.mod, go.sum, build.sh and go version>/,
#   so a fresh clone on a warm machine only links them into testenv/bin/.
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
BIN="$HERE/bin"
NAMES=(kube-apiserver etcd)

have_all() { local d=$1 n; for n in "${NAMES[@]}"; do [[ -x "$d/$n" ]] || return 1; done; }

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
    if have_all "$KUBEBUILDER_ASSETS"; then
        echo "testenv: using binaries from KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
        exit 0
    fi
    echo "testenv: KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks ${NAMES[*]}" >&2
    exit 1
fi

command -v go >/dev/null || { echo "testenv: go not found (or set KUBEBUILDER_ASSETS)" >&2; exit 1; }

key=$({ cat go.mod go.sum build.sh; find . -name '*.go' -not -path './bin/*' | sort | xargs -r cat
        go env GOVERSION GOOS GOARCH; } | sha256sum | cut -c1-16)
CACHE_ROOT="${TRIO_CONTROLLER_CACHE:-$HOME/.cache/trio-controller}/testenv"
CACHED="$CACHE_ROOT/$key"

link_into_bin() {
    mkdir -p "$BIN"
    local n
    for n in "${NAMES[@]}"; do ln -sfn "$CACHED/$n" "$BIN/$n"; done
    echo "$key" >"$BIN/.key"
}

if have_all "$CACHED"; then
    link_into_bin
    echo "testenv: binaries up to date ($CACHED)"
    exit 0
fi

mkdir -p "$CACHE_ROOT"
# One build at a time per machine; a second caller waits, then finds the cache filled.
exec 9>"$CACHE_ROOT/.lock"
flock 9
if ! have_all "$CACHED"; then
    k8s_version=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
    minor=${k8s_version#v1.}; minor=${minor%%.*}
    ldflags="-s -w"
    ldflags+=" -X k8s.io/component-base/version.gitVersion=$k8s_version"
    ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
    ldflags+=" -X k8s.io/component-base/version.gitMinor=$minor"
    ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
    tmp=$(mktemp -d "$CACHE_ROOT/.build.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    start=$(date +%s)
    echo "testenv: building kube-apiserver $k8s_version and etcd into $CACHED (cold: several minutes)"
    go build -trimpath -ldflags="$ldflags" -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
    go build -trimpath -ldflags="-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3
    rm -rf "$CACHED"
    mv "$tmp" "$CACHED"
    trap - EXIT
    echo "testenv: built in $(($(date +%s) - start)) s"
fi
link_into_bin
echo "testenv: binaries ready in $BIN"
