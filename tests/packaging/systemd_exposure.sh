#!/usr/bin/env bash
# The systemd unit must score "OK" or better: exposure <= 2.0 in systemd-analyze's offline check,
# and reload must be wired to SIGHUP.
set -euo pipefail
unit="$1"
grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$unit" || { echo "ExecReload does not send SIGHUP"; exit 1; }
output=$(systemd-analyze security --offline=true "$unit" 2>&1)
line=$(grep "Overall exposure level" <<<"$output")
echo "$line"
score=$(sed -E 's/.*: ([0-9]+\.[0-9]+).*/\1/' <<<"$line")
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || { echo "exposure $score > 2.0"; exit 1; }
