#!/bin/sh
# sim.sh IN ENERGY BEAM CHARGE OUT - a stand-in simulation: sums IN and
# writes one result line to OUT.
set -eu
in=$1 energy=$2 beam=$3 charge=$4 out=$5
mkdir -p "$(dirname "$out")"
sum=0
while read -r x; do
    sum=$(( (sum + x) % 1000000007 ))
done < "$in"
printf '%s energy=%s beam=%s charge=%s sum=%s\n' "$in" "$energy" "$beam" "$charge" "$sum" > "$out"
