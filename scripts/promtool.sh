#!/usr/bin/env bash
# Put Prometheus' `promtool` at .tools/bin/promtool, for the tests that check
# the alert rules (`promtool check rules`, `promtool test rules`), the
# Prometheus configuration and the relay's /metrics page.
#
#   scripts/promtool.sh         install it unless it is there (idempotent)
#
# promtool comes from Debian's `prometheus` package. The package is downloaded
# and only promtool is unpacked from it: installing the package itself would
# also register and start a Prometheus server. A promtool already on PATH is
# linked instead of downloaded.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
TARGET="$REPO_ROOT/.tools/bin/promtool"

say() { printf 'promtool: %s\n' "$*"; }
die() { printf 'promtool: error: %s\n' "$*" >&2; exit 1; }

# shellcheck source=scripts/lib/common.sh
source "$SCRIPT_DIR/lib/common.sh"

works() { "$1" --version >/dev/null 2>&1; }

if [ -x "$TARGET" ] && works "$TARGET"; then
    exit 0
fi
mkdir -p "$(dirname "$TARGET")"

if system="$(command -v promtool)" && works "$system"; then
    ln -sf "$system" "$TARGET"
    say "using $system"
    exit 0
fi

command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install Prometheus' promtool yourself"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# `apt-get download` needs the package lists; a fresh machine may have none yet.
if ! (cd "$work" && apt-get download -q prometheus >/dev/null 2>&1); then
    as_root apt-get update -q
    (cd "$work" && apt-get download -q prometheus) || die "cannot download Debian's prometheus package"
fi
dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
install -m 0755 "$work/root/usr/bin/promtool" "$TARGET"
works "$TARGET" || die "the unpacked promtool does not run"
say "installed $("$TARGET" --version 2>&1 | head -n 1)"
