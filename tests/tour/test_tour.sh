#!/bin/sh
# tour.smoke: the shortened tour (tools/tour --quick) against this build,
# then its results.tsv checked: every claim (a-d) got its numbers and a
# verdict, every model a row in the one-request table, and the claims that
# hold on any Linux machine hold: a silent client's blocking thread sleeps
# (state S) and there is exactly one thread per connection; the spinning
# nonblocking loop uses more than half a core (or, when other processes keep
# it from that, never sleeps: state R in over 90 % of the samples); uring
# makes fewer than 0.5 system calls per request and no recv/send at all.  The machine-dependent
# verdicts (latencies, poll's collapse at this small scale) are only
# required to exist.
#   test_tour.sh SOURCE_DIR BUILD_DIR
# Skips (77) when strace is missing or cannot trace here: the tour counts
# system calls with it.
set -u
src=$1
build=$2
if ! command -v strace >/dev/null 2>&1; then
    echo "SKIP: strace is not installed (tools/install-deps bench installs it)"
    exit 77
fi
if ! strace -f -qq -o /dev/null true 2>/dev/null; then
    echo "SKIP: strace cannot trace here (ptrace refused)"
    exit 77
fi
out=$(mktemp -d "${TMPDIR:-/tmp}/ioserve-tour-smoke.XXXXXX") || exit 1
trap 'rm -rf "$out"' EXIT

status=0
fail() { echo "FAIL: $*" >&2; status=1; }

"$src/tools/tour" --quick --build "$build" --out "$out" || fail "tools/tour exited $?"
r=$out/results.tsv
[ -s "$r" ] || { fail "no results.tsv"; exit 1; }

val() { awk -F'\t' -v c="$1" -v k="$2" '$1 == c && $2 == k { print $3 }' "$r"; }
is() { awk "BEGIN { exit !($1) }"; }
number() { # CLAIM KEY: the value must be a number
    v=$(val "$1" "$2")
    case $v in
    '' | *[!0-9.]* | *.*.*) fail "($1) $2 is not a number: '$v'"; return 1 ;;
    esac
}

uring_ok=1
why=$("$build/bench/uring-probe") || uring_ok=0

for claim in a b c d; do
    v=$(val $claim verdict)
    case $v in
    holds | "does not hold here, because "?*) ;;
    "skipped: "?*) [ $claim = d ] && [ $uring_ok = 0 ] || fail "($claim) skipped: $v" ;;
    *) fail "($claim) no verdict: '$v'" ;;
    esac
    echo "($claim) $v"
done

for k in threads_per_conn epoll_threads rss_kib_per_conn_blocking rss_kib_per_conn_epoll; do number a $k; done
for k in spin_cpu_pct spin_runnable_pct nap_cpu_pct epoll_cpu_pct nap_p50_us epoll_p50_us; do number b $k; done
for k in select_syscalls_per_req blocking_syscalls_per_req select_threads_added_busy epoll_threads_added_busy \
         poll_idle_ratio epoll_idle_ratio select_idle_refused; do number c $k; done
models="blocking nonblocking select poll epoll sigio"
if [ $uring_ok = 1 ]; then
    number d syscalls_per_req
    number d recv_send_calls
    models="$models uring"
else
    echo "uring not checked: $why"
fi
for m in $models; do number table "${m}_calls"; done

# The robust claims.
[ "$(val a thread_state)" = S ] || fail "(a) the silent client's thread is in state '$(val a thread_state)', not S"
[ "$(val a threads_per_conn)" = 1.000 ] || fail "(a) blocking made $(val a threads_per_conn) threads per connection, not 1"
spin=$(val b spin_cpu_pct) runnable=$(val b spin_runnable_pct)
is "${spin:-0} > 50 || ${runnable:-0} > 90" ||
    fail "(b) spinning nonblocking used $spin % of a core and was running or ready to run in $runnable % of the samples"
if [ $uring_ok = 1 ]; then
    per=$(val d syscalls_per_req)
    is "${per:-9} < 0.5" || fail "(d) uring made $per system calls per request"
    [ "$(val d recv_send_calls)" = 0 ] || fail "(d) uring's worker made $(val d recv_send_calls) recv/send calls"
fi

grep -q '^| # | blocking | nonblocking | select | poll | epoll | sigio' "$out/report.md" ||
    fail "report.md lacks the one-request table"
head -c 5 "$out/syscalls.svg" 2>/dev/null | grep -q '^<svg' || fail "no SVG chart"
[ $status = 0 ] || { echo "--- report.md:" >&2; cat "$out/report.md" >&2; }
exit $status
