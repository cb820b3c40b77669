#!/bin/sh
# hello.sh NAME OUT - write a greeting naming the task and the host to OUT.
set -eu
printf 'hello from task %s on %s\n' "$1" "$(uname -n)" > "$2"
cat "$2"
