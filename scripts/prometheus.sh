#!/usr/bin/env bash
# Put Prometheus' `promtool` and `prometheus`, and Alertmanager's `amtool` and
# `alertmanager`, at .tools/bin/, for the tests that check the alert rules
# (`promtool check rules`, `promtool test rules`), the Prometheus and
# Alertmanager configurations and the relay's /metrics page, and that run a
# real Prometheus against a real relay and a real Alertmanager's inhibitions.
#
#   scripts/prometheus.sh       install them unless they are there (idempotent)
#
# They come from Debian's `prometheus` and `prometheus-alertmanager` packages.
# Each package is downloaded and only its programs are unpacked from it:
# installing the packages themselves would also register and start the servers.
# Programs already on PATH are linked instead of downloaded.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
BIN_DIR="$REPO_ROOT/.tools/bin"
PROGRAMS=(promtool prometheus amtool alertmanager)

PROG=prometheus
# shellcheck source=scripts/lib/common.sh
source "$SCRIPT_DIR/lib/common.sh"

works() { "$1" --version >/dev/null 2>&1; }

# Debian's Alertmanager reads its notification templates from this fixed path.
TEMPLATES_DIR=/usr/share/prometheus/alertmanager

installed() {
    local program
    for program in "${PROGRAMS[@]}"; do
        [ -x "$BIN_DIR/$program" ] && works "$BIN_DIR/$program" || return 1
    done
    [ -f "$TEMPLATES_DIR/default.tmpl" ] || ! strings_mention_templates
}

# Whether the alertmanager at .tools/bin is Debian's build, which needs them.
strings_mention_templates() { grep -q "$TEMPLATES_DIR" "$BIN_DIR/alertmanager" 2>/dev/null; }

installed && exit 0
mkdir -p "$BIN_DIR"

linked=1
for program in "${PROGRAMS[@]}"; do
    if system="$(command -v "$program" || command -v "prometheus-$program")" && works "$system"; then
        ln -sf "$system" "$BIN_DIR/$program"
    else
        linked=0
    fi
done
if [ "$linked" = 1 ]; then
    say "prometheus: using ${PROGRAMS[*]} from PATH"
    exit 0
fi

command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install Prometheus and Alertmanager (${PROGRAMS[*]}) yourself"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
PACKAGES=(prometheus prometheus-alertmanager)
# `apt-get download` needs the package lists; a fresh machine may have none yet.
if ! (cd "$work" && apt-get download -q "${PACKAGES[@]}" >/dev/null 2>&1); then
    as_root apt-get update -q
    (cd "$work" && apt-get download -q "${PACKAGES[@]}") || die "cannot download Debian's ${PACKAGES[*]} packages"
fi
for deb in "$work"/*.deb; do
    dpkg-deb -x "$deb" "$work/root"
done
for program in "${PROGRAMS[@]}"; do
    # Debian names Alertmanager's server prometheus-alertmanager.
    unpacked="$work/root/usr/bin/$program"
    [ -e "$unpacked" ] || unpacked="$work/root/usr/bin/prometheus-$program"
    install -m 0755 "$unpacked" "$BIN_DIR/$program"
done
if [ ! -f "$TEMPLATES_DIR/default.tmpl" ] && strings_mention_templates; then
    # The only file this script puts outside the repository (root: through sudo when not root).
    say "prometheus: putting Alertmanager's notification templates in $TEMPLATES_DIR"
    as_root install -d "$TEMPLATES_DIR"
    as_root install -m 0644 "$work/root$TEMPLATES_DIR/"*.tmpl "$TEMPLATES_DIR/"
fi
installed || die "the unpacked programs do not run"
say "prometheus: installed $("$BIN_DIR/prometheus" --version 2>&1 | head -n 1)," \
    "$("$BIN_DIR/alertmanager" --version 2>&1 | head -n 1)"
