#!/bin/sh
# Build hpcport and run the demo campaigns on the built-in "local" site.
set -eu
cd "$(dirname "$0")/.."
sh tools/install-deps.sh
[ -f build/build.ninja ] || meson setup --wipe build --buildtype=release >/dev/null 2>&1 || meson setup build --buildtype=release >/dev/null
ninja -C build >/dev/null
# Tasks on the local site run in the workflow's directory: run the demo on a
# copy so the examples stay clean.
rm -rf build/demo && mkdir -p build/demo && cp -r examples/hello examples/sweep examples/pilots build/demo/
export HPCPORT_STATE_DIR="$PWD/build/demo/state"
HP=$PWD/build/cli/hpcport
cd build/demo
set -x
$HP validate hello/hello.yaml sweep/sweep.yaml pilots/pilots.yaml
$HP plan sweep/sweep.yaml --site local
$HP run hello/hello.yaml --site local
$HP run sweep/sweep.yaml --site local
$HP status
$HP status sweep --tasks
$HP logs sweep summary
cat sweep/summary.txt
$HP plan pilots/pilots.yaml --site local --lint
$HP run pilots/pilots.yaml --site local
cat pilots/histogram.txt
