#!/bin/sh
# bench.smoke: ioserve (epoll, then http and echo handlers) under one second
# of ioserve-load; passes when the load generator saw no error and no bad
# reply, and requests were answered.  Then the same against a server that
# accepts connections and never answers: ioserve-load must fail that run.
# A functional check of the benchmark lab, never a speed check.
# usage: smoke.sh IOSERVE IOSERVE_LOAD
set -u
IOSERVE=$1
LOAD=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/ioserve-smoke.XXXXXX") || exit 1
pid=
stopped=
cleanup() {
    if [ -n "$pid" ]; then
        [ -z "$stopped" ] || kill -CONT $stopped 2>/dev/null
        kill -TERM "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    rm -rf "$dir"
}
trap cleanup EXIT
: >"$dir/ioserve.cfg"

# Starts ioserve (model epoll, handler $1) in the background: $pid, $port.
start() {
    "$IOSERVE" -c "$dir/ioserve.cfg" -o listen=127.0.0.1:0 -o model=epoll \
        -o handler="$1" 2>"$dir/err" &
    pid=$!
    port=
    i=0
    while [ $i -lt 100 ] && [ -z "$port" ]; do
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\) .*/\1/p' "$dir/err")
        [ -z "$port" ] && sleep 0.1
        i=$((i + 1))
    done
    if [ -z "$port" ]; then
        echo "smoke: ioserve did not report its port:" >&2
        cat "$dir/err" >&2
        exit 1
    fi
}

stop() {
    kill -TERM "$pid"
    wait "$pid"
    pid=
}

status=0
for handler in http echo; do
    start $handler
    out=$("$LOAD" -m "$handler" -p "$port" -c 10 -P 4 -d 1 -w 0.2 -A 30 -x)
    rc=$?
    echo "$handler: $out"
    [ $rc -eq 0 ] || { echo "smoke: $handler: ioserve-load exit $rc" >&2; status=1; }
    requests=$(printf '%s\n' "$out" | sed -n 's/.*requests=\([0-9][0-9]*\).*/\1/p')
    [ "${requests:-0}" -gt 0 ] ||
        { echo "smoke: $handler: no request was answered (requests=${requests:-?})" >&2; status=1; }
    stop
done

# A server that accepts and never answers: ioserve with its master and
# workers stopped (SIGSTOP) after it listens.  The kernel still completes
# every handshake into the listen backlog; no reply ever comes.
start echo
stopped="$pid $(cat /proc/"$pid"/task/*/children)"
kill -STOP $stopped
out=$("$LOAD" -m echo -p "$port" -c 4 -d 0.5 -w 0 -A 30 2>"$dir/load-err")
rc=$?
echo "silent server: exit $rc: $out $(cat "$dir/load-err")"
if [ $rc -eq 0 ]; then
    echo "smoke: ioserve-load passed a run in which nothing was answered" >&2
    status=1
elif ! grep -q "no reply" "$dir/load-err"; then
    echo "smoke: ioserve-load failed the silent run without saying no reply came" >&2
    status=1
fi
kill -CONT $stopped
stopped=
stop
exit $status
