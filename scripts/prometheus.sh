#!/usr/bin/env bash
# Put Prometheus' `promtool` and `prometheus` at .tools/bin/, for the tests that
# check the alert rules (`promtool check rules`, `promtool test rules`), the
# Prometheus configuration and the relay's /metrics page, and that run a real
# Prometheus against a real relay.
#
#   scripts/prometheus.sh       install them unless they are there (idempotent)
#
# Both come from Debian's `prometheus` package. The package is downloaded and
# only the two programs are unpacked from it: installing the package itself
# would also register and start a Prometheus server. Programs already on PATH
# are linked instead of downloaded.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
BIN_DIR="$REPO_ROOT/.tools/bin"
PROGRAMS=(promtool prometheus)

PROG=prometheus
# shellcheck source=scripts/lib/common.sh
source "$SCRIPT_DIR/lib/common.sh"

works() { "$1" --version >/dev/null 2>&1; }

installed() {
    local program
    for program in "${PROGRAMS[@]}"; do
        [ -x "$BIN_DIR/$program" ] && works "$BIN_DIR/$program" || return 1
    done
}

installed && exit 0
mkdir -p "$BIN_DIR"

linked=1
for program in "${PROGRAMS[@]}"; do
    if system="$(command -v "$program")" && works "$system"; then
        ln -sf "$system" "$BIN_DIR/$program"
    else
        linked=0
    fi
done
if [ "$linked" = 1 ]; then
    say "prometheus: using ${PROGRAMS[*]} from PATH"
    exit 0
fi

command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install Prometheus (promtool and prometheus) yourself"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# `apt-get download` needs the package lists; a fresh machine may have none yet.
if ! (cd "$work" && apt-get download -q prometheus >/dev/null 2>&1); then
    as_root apt-get update -q
    (cd "$work" && apt-get download -q prometheus) || die "cannot download Debian's prometheus package"
fi
dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
for program in "${PROGRAMS[@]}"; do
    install -m 0755 "$work/root/usr/bin/$program" "$BIN_DIR/$program"
done
installed || die "the unpacked programs do not run"
say "prometheus: installed $("$BIN_DIR/prometheus" --version 2>&1 | head -n 1)"
