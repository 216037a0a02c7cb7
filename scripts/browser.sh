#!/usr/bin/env bash
# Install what the browser tests need, unless it is there already:
#   - Chromium from Debian's packages (/usr/bin/chromium), driven by Playwright
#     (a Python dependency, installed with the virtualenv; its own browser
#     download is never used);
#   - axe-core, the accessibility engine, from the npm registry into
#     tests/integration/browser/node_modules, pinned by its package-lock.json
#     (Node.js and npm come from Debian when missing).
set -euo pipefail

PROG=browser
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
BROWSER_TESTS="$REPO_ROOT/tests/integration/browser"

# shellcheck source=scripts/lib/common.sh
source "$SCRIPT_DIR/lib/common.sh"

if [ ! -x /usr/bin/chromium ]; then
    say "$PROG: installing Debian's chromium"
    apt_install --no-install-recommends chromium
fi

if ! command -v npm >/dev/null 2>&1; then
    say "$PROG: installing Node.js and npm"
    apt_install --no-install-recommends nodejs npm
fi

if [ ! -f "$BROWSER_TESTS/node_modules/axe-core/axe.min.js" ] \
    || [ "$BROWSER_TESTS/package-lock.json" -nt "$BROWSER_TESTS/node_modules/.package-lock.json" ]; then
    say "$PROG: installing axe-core"
    npm ci --prefix "$BROWSER_TESTS" --no-audit --no-fund --loglevel=error
fi

say "$PROG: $(/usr/bin/chromium --version 2>/dev/null | head -1)," \
    "axe-core $(node -p "require('$BROWSER_TESTS/node_modules/axe-core/package.json').version")"
