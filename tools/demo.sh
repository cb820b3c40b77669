#!/bin/sh
# Build hpcport and run the demo campaigns on the built-in "local" site.
set -eu
cd "$(dirname "$0")/.."
sh tools/install-deps.sh
[ -d build/meson-info ] || meson setup build --buildtype=release >/dev/null
ninja -C build >/dev/null
export HPCPORT_STATE_DIR="${HPCPORT_STATE_DIR:-$PWD/build/demo-state}"
HP=./build/cli/hpcport
set -x
$HP validate examples/hello/hello.yaml examples/sweep/sweep.yaml
$HP plan examples/sweep/sweep.yaml --site local
$HP run examples/hello/hello.yaml --site local
$HP run examples/sweep/sweep.yaml --site local
$HP status
$HP status sweep --tasks
