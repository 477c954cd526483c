#!/usr/bin/env bash
# Sets up a fresh Debian machine (Python 3.11+) for development: Debian packages, then a
# virtual environment with every Python package pinned in requirements/dev.lock.
# Idempotent and quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(python3 python3-venv python3-dev build-essential curl ca-certificates chromium postgresql
    systemd-container mmdebstrap openssh-client qemu-user-static nginx mosquitto mosquitto-clients nftables)
VENV=.venv
STAMP=$VENV/.setup-stamp

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

install_debian_packages() {
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "Installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

pick_python() {
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "setup: Python 3.11 or newer is required" >&2
    return 1
}

install_debian_packages "${DEBIAN_PACKAGES[@]}" "$@"

wanted=$(cat requirements/dev.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$wanted" ]; then
    exit 0
fi
python=$(pick_python)
if [ ! -x "$VENV/bin/python" ]; then
    say "Creating $VENV with $($python --version)"
    "$python" -m venv "$VENV"
fi
say "Installing pinned Python packages (requirements/dev.lock)"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q --require-hashes -r requirements/dev.lock
"$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e .
echo "$wanted" > "$STAMP"
