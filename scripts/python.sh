#!/usr/bin/env bash
# The two programs every other step stands on: uv, and a Python 3.13 for .venv.
#
#   scripts/python.sh uv     put uv at .tools/bin/uv unless it is there (idempotent)
#   scripts/python.sh find   print the path of a Python 3.13 to build .venv with
#
# uv is bootstrapped from whichever Python 3 the machine has (Debian 12's 3.11
# will do; it needs the venv module, Debian's python3-venv). The Python 3.13 is,
# in this order: $PYTHON when set; one uv finds (python3.13 on PATH, or one uv
# installed earlier); one `uv python install 3.13` fetches (uv's standalone
# builds, downloaded from GitHub, so only where that is reachable). When none
# can be had, `find` fails with one sentence saying what to install.
#
# Environment (all optional):
#   PYTHON                a Python 3.13 to use as it is (a path or a name on PATH)
#   UV_PYTHON_INSTALL_DIR where uv keeps the Pythons it installs (uv's own default)
set -euo pipefail

PROG=python
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(dirname "$SCRIPT_DIR")"
# shellcheck source=scripts/lib/common.sh
source "$SCRIPT_DIR/lib/common.sh"

UV_VERSION=0.13.8
TOOLS="$REPO_ROOT/.tools"
UV="$TOOLS/bin/uv"
WANTED=3.13

cmd_uv() {
    case "$("$UV" --version 2>/dev/null)" in "uv $UV_VERSION "*) return 0 ;; esac
    local bootstrap candidate
    for candidate in "${PYTHON:-}" python3.13 python3; do
        if [ -n "$candidate" ] && bootstrap="$(command -v "$candidate")"; then
            break
        fi
        bootstrap=""
    done
    [ -n "$bootstrap" ] || die "no python3 found: install Python 3 (Debian: apt-get install python3 python3-venv)"
    "$bootstrap" -m venv "$TOOLS" ||
        die "$bootstrap cannot create a virtualenv: install its venv module (Debian: apt-get install python3-venv)"
    "$TOOLS/bin/pip" install --quiet --disable-pip-version-check "uv==$UV_VERSION"
    say "python: uv $UV_VERSION installed at $UV"
}

# A usable interpreter: it runs and is 3.13.
is_313() { [ "$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$WANTED" ]; }

# A Python 3.13 on PATH, else one uv installed; never the project's own .venv.
uv_find() {
    local found preference
    for preference in --system "--python-preference=only-managed"; do
        if found="$("$UV" python find --no-project "$preference" "$WANTED" 2>/dev/null)" && is_313 "$found"; then
            echo "$found"
            return 0
        fi
    done
    return 1
}

cmd_find() {
    local found
    if [ -n "${PYTHON:-}" ]; then
        if ! found="$(command -v "$PYTHON")" || ! is_313 "$found"; then
            die "PYTHON=$PYTHON is not a Python $WANTED"
        fi
        echo "$found"
        return 0
    fi
    cmd_uv >&2
    if found="$(uv_find)"; then
        echo "$found"
        return 0
    fi
    say "python: no Python $WANTED on this machine; asking uv to install one" >&2
    if "$UV" python install --quiet "$WANTED" >&2 && found="$(uv_find)"; then
        echo "$found"
        return 0
    fi
    die "no Python $WANTED here and uv could not download one (its builds come from GitHub): install Python $WANTED (Debian 13: apt-get install python3.13; Debian 12 has none: e.g. pyenv install $WANTED) or set PYTHON to one"
}

case "${1:-}" in
    uv) cmd_uv ;;
    find) cmd_find ;;
    -h | --help | help) usage ;;
    *) die "unknown command: ${1:-} (uv|find)" ;;
esac
