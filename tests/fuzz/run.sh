#!/bin/sh
# Runs every fuzz target for a bounded time (default 60 s each), starting from the seed
# corpus. Needs the fuzz build: cmake --preset fuzz && cmake --build --preset fuzz
# (Debian packages clang-14 libclang-rt-14-dev). Usage: tests/fuzz/run.sh [SECONDS]
# New inputs go to build-fuzz/corpus/<target>; crashes to build-fuzz/crash-*: add a
# crashing input to tests/fuzz/corpus/<target> once fixed, so it is replayed by every test run.
set -eu
cd "$(dirname "$0")/../.."
seconds=${1:-60}
for target in line_framing http_framing websocket_frames resp config; do
    work=build-fuzz/corpus/$target
    mkdir -p "$work"
    echo "fuzz_$target: ${seconds} s"
    build-fuzz/bin/fuzz_$target -max_total_time="$seconds" -max_len=4096 -timeout=10 \
        -artifact_prefix=build-fuzz/ -print_final_stats=1 "$work" "tests/fuzz/corpus/$target"
done
