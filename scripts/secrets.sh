#!/usr/bin/env bash
# Write the secrets `docker compose up` requires into .env, each only once.
#
#   scripts/secrets.sh [ENV_FILE]   (default: .env beside compose.yaml; `make secrets`)
#
# Every secret compose.yaml requires (`${NAME:?...}` whose name ends in
# _PASSWORD, _SECRET or _KEY) or hands to a service as a secret
# (`environment: NAME` under `secrets:`) that ENV_FILE does not set yet gets a
# random value: 32 random bytes as 64 hex characters, safe inside the URLs the
# passwords travel in. A value already there is never changed, so a second run
# changes nothing; an empty one (`NAME=`) counts as missing and is filled in
# place. A required variable that is no secret (EMAIL_HOST: your SMTP server)
# is not invented: the script names each one still missing, and exits 0.
# docs/SECURITY.md says what each secret is for.
#
# Compose reads ENV_FILE for its ${...} values and hands it to the application
# containers. `make run` reads .env too: in a checkout that runs both, give
# compose a file of its own (`scripts/secrets.sh compose.env`, then
# `docker compose --env-file compose.env up --build`), since the ClickHouse
# passwords written here are not those of the local server's users.
set -euo pipefail

PROG=secrets
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(dirname "$SCRIPT_DIR")"
# shellcheck source=scripts/lib/common.sh
source "$SCRIPT_DIR/lib/common.sh"

COMPOSE_FILE="$REPO_ROOT/compose.yaml"
ENV_FILE="${1:-$REPO_ROOT/.env}"

case "$ENV_FILE" in -h | --help | help) usage && exit 0 ;; esac
[ -f "$COMPOSE_FILE" ] || die "$COMPOSE_FILE not found"

# "secret NAME" or "setting NAME" for each variable compose.yaml requires, in
# the order it first mentions them.
required_names() {
    local name
    {
        grep -oE '\$\{[A-Z_][A-Z0-9_]*:\?' "$COMPOSE_FILE" | sed -E 's/^\$\{//; s/:\?$//' |
            while read -r name; do
                if [[ "$name" =~ (_PASSWORD|_SECRET|_KEY)$ ]]; then echo "secret $name"; else echo "setting $name"; fi
            done
        grep -E '^[[:space:]]+environment:[[:space:]]+[A-Z_][A-Z0-9_]*[[:space:]]*$' "$COMPOSE_FILE" |
            sed -E 's/.*environment:[[:space:]]+/secret /; s/[[:space:]]*$//'
    } | awk '!seen[$2]++'
}

random_secret() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }

# The value NAME has in the env file ("" when absent or empty; the last one wins).
current_value() {
    sed -nE "s/^[[:space:]]*(export[[:space:]]+)?$1=//p" "$ENV_FILE" | tail -n 1 | sed -E "s/^[\"']//; s/[\"']$//"
}

if [ ! -e "$ENV_FILE" ]; then
    (umask 077 && : >"$ENV_FILE")
    say "secrets: created $ENV_FILE"
fi

written=() kept=() yours=()
while read -r kind name; do
    if [ -n "$(current_value "$name")" ]; then
        kept+=("$name")
        continue
    fi
    if [ "$kind" = setting ]; then
        yours+=("$name")
        continue
    fi
    value="$(random_secret)"
    if grep -qE "^[[:space:]]*(export[[:space:]]+)?$name=" "$ENV_FILE"; then
        # Set but empty: fill that line, so no later empty one undoes it.
        sed -i -E "s/^([[:space:]]*(export[[:space:]]+)?$name=).*$/\\1$value/" "$ENV_FILE"
    else
        # A file not ending in a newline would glue the new line onto its last one.
        if [ -s "$ENV_FILE" ] && [ -n "$(tail -c 1 "$ENV_FILE")" ]; then echo >>"$ENV_FILE"; fi
        printf '%s=%s\n' "$name" "$value" >>"$ENV_FILE"
    fi
    written+=("$name")
done < <(required_names)

say "secrets: ${#written[@]} written to $ENV_FILE${written[*]:+ (${written[*]})}," \
    "${#kept[@]} already set${kept[*]:+ (${kept[*]})}"
for name in "${yours[@]}"; do
    say "secrets: compose also requires $name, which is no secret to invent: set it in $ENV_FILE"
done
