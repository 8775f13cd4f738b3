#!/usr/bin/env bash
# Prepare this machine for OBSY: Debian packages (when missing) and the development
# virtual environment (.venv) with every package installed editable.
# Safe to run again: it only does what is missing or out of date.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${OBSY_VENV:-.venv}
PYTHON=${PYTHON:-python3}

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

install_debian_packages() {
    local wanted=() missing=()
    mapfile -t wanted < <(grep -v -E '^\s*(#|$)' scripts/apt-packages.txt)
    for pkg in "${wanted[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

check_python() {
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "OBSY needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1)." >&2
        echo "Set PYTHON=/path/to/python3.11 and run again." >&2
        exit 1
    fi
}

create_venv() {
    local stamp="$VENV/.obsy-installed"
    local inputs=(shared/pyproject.toml services/*/pyproject.toml tools/*/pyproject.toml requirements-dev.txt)
    if [ -f "$stamp" ] && [ -z "$(find "${inputs[@]}" -newer "$stamp" 2>/dev/null)" ]; then
        return 0
    fi
    check_python
    [ -x "$VENV/bin/python" ] || { say "creating $VENV"; "$PYTHON" -m venv "$VENV"; }
    say "installing OBSY and its dependencies into $VENV (editable)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    local editables=(-e "shared[indi]")
    for dir in services/*/ tools/*/; do editables+=(-e "${dir%/}"); done
    "$VENV/bin/python" -m pip install -q "${editables[@]}" -r requirements-dev.txt
    touch "$stamp"
}

install_debian_packages "$@"
create_venv
say "ready: $VENV"
