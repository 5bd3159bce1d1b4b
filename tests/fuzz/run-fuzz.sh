#!/bin/sh
# run-fuzz.sh FUZZER CORPUS WORKDIR: fuzzes for $FUZZ_SECONDS (default 15)
# seconds, starting from the seed corpus.  New interesting inputs go to
# WORKDIR/new (the corpus in the source tree is only read); a crash, leak
# or timeout leaves its input in WORKDIR/artifacts and fails.  Exit 77
# when the fuzzer could not be built (no clang fuzzer runtime).
bin=$1 corpus=$2 work=$3
secs=${FUZZ_SECONDS:-15}
if [ ! -x "$bin" ]; then
    echo "SKIP: $bin was not built: clang's libFuzzer runtime is missing"
    echo "      (Debian: clang libclang-rt-14-dev; make fuzz installs them)"
    exit 77
fi
mkdir -p "$work/new" "$work/artifacts" || exit 1
echo "fuzzing $(basename "$bin") for $secs s from $corpus"
# libFuzzer's own error exit code is 77, which ctest would take for "skip".
supp=$(dirname "$0")/../lsan.supp
LSAN_OPTIONS="suppressions=$supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}" \
"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
    -error_exitcode=1 -timeout_exitcode=1 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
    "$work/new" "$corpus" 2>"$work/log"
rc=$?
tail -n 25 "$work/log"
if [ $rc -ne 0 ]; then
    echo "FAILED: $(basename "$bin") exited $rc; its input:"
    ls -l "$work/artifacts"
    echo "Keep it as a regression input: cp $work/artifacts/<file> $corpus/"
fi
exit $rc
