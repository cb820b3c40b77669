#!/bin/sh
# Build hpcport with ASan/UBSan, start the test services and run every test. The last line printed is
# "N passed, N failed, N skipped", counting each test case (TAP line).
set -eu
cd "$(dirname "$0")/.."
sh tools/install-deps.sh --test
B=build-test
[ -f $B/build.ninja ] || { rm -rf $B; meson setup $B -Dtests=enabled -Db_sanitize=address,undefined \
    -Dwerror=true -Db_lundef=false >/dev/null; }
if ! ninja -C $B; then
    echo "the build failed"
    echo "0 passed, 1 failed"
    exit 1
fi
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
set +e
# The integration tests talk to real services (sshd, MFA, munge, Slurm)
# started on loopback for this run and stopped after it.
bash tests/harness/with-services.sh \
    meson test -C $B --print-errorlogs --num-processes 2 "$@"
rc=$?
set -e
python3 tools/tap-summary.py $B/meson-logs/testlog.json
exit $rc
