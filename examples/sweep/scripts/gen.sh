#!/bin/sh
# gen.sh SEED OUT - write 10 pseudo-random integers derived from SEED to OUT.
set -eu
seed=$1 out=$2
mkdir -p "$(dirname "$out")"
x=$seed i=0
: > "$out"
while [ "$i" -lt 10 ]; do
    x=$(( (x * 1103515245 + 12345) % 2147483648 ))
    echo "$x" >> "$out"
    i=$((i + 1))
done
