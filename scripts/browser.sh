#!/usr/bin/env bash
# Install what the browser tests need, unless it is there already:
#   - Chromium from Debian's packages (/usr/bin/chromium), driven by Playwright
#     (a Python dependency, installed with the virtualenv; its own browser
#     download is never used);
#   - axe-core, the accessibility engine, from the npm registry into
#     tests/browser/node_modules, pinned by tests/browser/package-lock.json
#     (Node.js and npm come from Debian when missing).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
BROWSER_TESTS="$REPO_ROOT/tests/browser"

die() { printf 'browser: error: %s\n' "$*" >&2; exit 1; }

# shellcheck source=scripts/lib/common.sh
source "$SCRIPT_DIR/lib/common.sh"

apt_updated=false
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get is required to install: $*"
    if [ "$apt_updated" = false ]; then
        as_root apt-get update -q
        apt_updated=true
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

if [ ! -x /usr/bin/chromium ]; then
    echo "browser: installing Debian's chromium"
    apt_install chromium
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "browser: installing Node.js and npm"
    apt_install nodejs npm
fi

if [ ! -f "$BROWSER_TESTS/node_modules/axe-core/axe.min.js" ] \
    || [ "$BROWSER_TESTS/package-lock.json" -nt "$BROWSER_TESTS/node_modules/.package-lock.json" ]; then
    echo "browser: installing axe-core"
    npm ci --prefix "$BROWSER_TESTS" --no-audit --no-fund --loglevel=error
fi

echo "browser: $(/usr/bin/chromium --version 2>/dev/null | head -1), axe-core $(node -p "require('$BROWSER_TESTS/node_modules/axe-core/package.json').version")"
