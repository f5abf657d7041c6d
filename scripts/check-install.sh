#!/usr/bin/env bash
# The Dockerfile's install steps without Docker (make test-install): build the wheel with
# maturin, pip-install it with the tested pins as constraints into a fresh virtualenv, and
# run the installed commands from outside the repository. Then check what the wheel must
# carry for `python -m trio_controller.testing` to work without a checkout: the testenv
# recipe, the one-line error when no binaries exist, and that the installed package finds
# binaries `make testenv` already built in the keyed user cache (nothing is built here).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
BIN="$REPO/.venv/bin"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/trio-controller/target}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
start=$(date +%s)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/trio-controller-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "check-install: $*" >&2; exit 1; }

# 1. The wheel, as the Dockerfile's builder stage makes it.
"$BIN/maturin" build --release --locked --interpreter "$BIN/python" --out "$tmp/dist" \
    >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log" >&2; fail "maturin build failed"; }
wheels=("$tmp"/dist/*.whl)
[[ ${#wheels[@]} -eq 1 && -f ${wheels[0]} ]] || fail "expected one wheel in $tmp/dist"
wheel=${wheels[0]}
"$BIN/python" - "$wheel" <<'PY'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
needed = [f"trio_controller/testing/_testenv/{n}" for n in ("go.mod", "go.sum", "build.sh")]
needed += ["trio_controller/testing/__main__.py", "trio_controller/testing/_install.py"]
missing = [n for n in needed if n not in names]
if missing:
    sys.exit(f"check-install: the wheel lacks {missing}")
if not any(n.startswith("trio_controller/_native") for n in names):
    sys.exit("check-install: the wheel lacks the native module")
PY

# 2. A fresh virtualenv; pip install as the Dockerfile's runtime stage does. (The venv gets
#    no pip of its own, ensurepip costs ~10 s here: the checkout's pip installs into it.)
"$BIN/python" -m venv --without-pip "$tmp/venv"
"$BIN/pip" --python "$tmp/venv/bin/python" install -q --constraint requirements-dev.txt "$wheel"

# 3. From outside the repository, with nothing of the checkout on the path.
cd "$tmp"
unset PYTHONPATH
venv/bin/trio-controller --help >/dev/null
venv/bin/python -m trio_controller.testing --help >/dev/null
venv/bin/python -m trio_controller.testing install --help >/dev/null
where=$(venv/bin/python -c 'import trio_controller.testing as t; print(t.__file__)')
[[ $where == "$tmp/venv/"* ]] || fail "imported $where, not the installed package"

# 4. No binaries anywhere: one line naming KUBEBUILDER_ASSETS and the install command, exit 1.
mkdir -p "$tmp/empty"
if err=$(KUBEBUILDER_ASSETS="$tmp/empty" HOME="$tmp/home" \
        venv/bin/python -m trio_controller.testing --kubeconfig-out "$tmp/kc" 2>&1); then
    fail "found binaries in an empty folder"
fi
[[ $(wc -l <<<"$err") -eq 1 && $err == *KUBEBUILDER_ASSETS* \
   && $err == *"python -m trio_controller.testing install"* ]] || fail "not one clear line: $err"

# 5. The binaries `make testenv` built are found by the installed package (same cache key).
if [[ -z ${KUBEBUILDER_ASSETS:-} && -f $REPO/testenv/bin/.key ]]; then
    expected="${TRIO_CONTROLLER_CACHE:-$HOME/.cache/trio-controller}/testenv/$(cat "$REPO/testenv/bin/.key")"
    found=$(venv/bin/python -m trio_controller.testing path) || fail "cached binaries not found"
    [[ $found == "$expected" ]] || fail "found $found, expected $expected"
    # and `install` sees they are built: it prints the folder and builds nothing
    installed=$(venv/bin/python -m trio_controller.testing install 2>"$tmp/install.log") \
        || fail "install failed: $(cat "$tmp/install.log")"
    [[ $installed == "$expected" && ! -s $tmp/install.log ]] \
        || fail "install printed $installed: $(cat "$tmp/install.log")"
    echo "check-install: the installed package finds $found"
else
    echo "check-install: no testenv/bin/.key (make testenv), cache lookup not checked"
fi
echo "check-install: wheel $(basename "$wheel") installs and runs ($(($(date +%s) - start)) s)"
