#!/usr/bin/env bash
# Run the whole system in the foreground (`make run`): the backing services,
# then web, relay and Celery worker under honcho, their output interleaved.
#
# One Ctrl-C stops everything this run started: honcho stops the three
# processes, then, if this run had to start backing services, they are stopped
# again with `python -m devservices down <those services>`. Services that already
# answered before the run (a system PostgreSQL, an earlier `make services`) are
# left running. WEB_PORT (8000) and RELAY_HTTP_PORT (8001) move the two ports.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$REPO_ROOT/.venv/bin"
cd "$REPO_ROOT"

[ -x "$BIN/honcho" ] || { echo "run: $BIN/honcho not found; run 'make install' first" >&2; exit 1; }

# The services that do not answer yet are the ones this run will start, and
# the only ones it stops again. `status` fails when one does not answer: that
# is the answer, not an error (pipefail would otherwise end the run here).
not_running=()
while read -r service; do
    not_running+=("$service")
done < <({ "$BIN/python" -m devservices status 2>/dev/null || true; } | sed -n 's/^\([a-z]*\): not answering.*/\1/p')

cleaned_up=0
clean_up() {
    [ "$cleaned_up" = 0 ] || return 0
    cleaned_up=1
    # A second Ctrl-C must not cut the clean-up short and leave services running.
    trap '' INT TERM
    if [ "${#not_running[@]}" = 0 ]; then
        echo "run: the backing services were running before this run; left running"
        return 0
    fi
    echo "run: stopping the services this run started (${not_running[*]})"
    # Only those named, and of them only what devservices itself started (never
    # a system service): one an earlier `make services` started keeps running.
    "$BIN/python" -m devservices down "${not_running[@]}" ||
        echo "run: 'python -m devservices down ${not_running[*]}' failed; see 'python -m devservices status'" >&2
}
trap clean_up EXIT
# Bash runs these once the foreground command has returned (honcho gets the same
# Ctrl-C and stops its processes first); the EXIT trap then cleans up.
trap 'exit 130' INT
trap 'exit 143' TERM

"$BIN/python" -m devservices up

export PATH="$BIN:$PATH"
cat <<MSG

  web    http://127.0.0.1:${WEB_PORT:-8000}
  relay  http://127.0.0.1:${RELAY_HTTP_PORT:-8001}/status   (lag and counters; /metrics for Prometheus)

  Ctrl-C stops everything.

MSG
# Not exec: this shell must outlive honcho to stop the services afterwards.
# Each process reads .env itself, where a variable already in the environment
# wins; honcho's own reading of .env would override the environment, so it is
# given none.
honcho -f Procfile -e /dev/null start
