#!/bin/sh
# analyze.sh < RESULTS - count result lines and report the largest sum.
set -eu
n=0 max=0
while read -r line; do
    s=${line##*sum=}
    n=$((n + 1))
    if [ "$s" -gt "$max" ]; then max=$s; fi
done
printf 'results=%s max_sum=%s\n' "$n" "$max"
