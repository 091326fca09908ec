#!/bin/sh
# The nightly refresh for the compose `nightly` service: sleep until CLERK_NIGHTLY_HOUR (0-23, the
# container's time zone, default 2), run `clerk nightly`, record the outcome, repeat.
# With no published index yet it runs once at start, so a new deployment is useful at once.
# `clerk-nightly-loop check` is the container health check: unhealthy only if the last run could
# not run at all (exit status 2); 1 (some documents failed) is reported but stays healthy.
set -u
HOME_DIR=${CLERK_HOME:-/data}
HOUR=${CLERK_NIGHTLY_HOUR:-2}
LAST="$HOME_DIR/nightly-last.json"
STATUS="$HOME_DIR/nightly-status"

if [ "${1:-}" = "check" ]; then
    [ ! -f "$STATUS" ] && exit 0
    [ "$(cat "$STATUS")" != "2" ]
    exit $?
fi

run_once() {
    clerk nightly --json > "$LAST.tmp"
    code=$?
    mv "$LAST.tmp" "$LAST"
    echo "$code" > "$STATUS"
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) clerk nightly exit status $code (details: $LAST)"
}

seconds_until_next_run() {
    now=$(date +%s)
    next=$(date -d "today $HOUR:00" +%s)
    [ "$next" -le "$now" ] && next=$((next + 86400))
    echo $((next - now))
}

[ -e "$HOME_DIR/index" ] || run_once
while true; do
    sleep "$(seconds_until_next_run)"
    run_once
done
