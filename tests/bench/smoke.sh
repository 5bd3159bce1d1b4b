#!/bin/sh
# bench.smoke: ioserve (epoll, then http and echo handlers) under one second
# of ioserve-load; passes when the load generator saw no error and no bad
# reply.  A functional check of the benchmark lab, never a speed check.
# usage: smoke.sh IOSERVE IOSERVE_LOAD
set -u
IOSERVE=$1
LOAD=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/ioserve-smoke.XXXXXX") || exit 1
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    rm -rf "$dir"
}
trap cleanup EXIT
: >"$dir/ioserve.cfg"

status=0
for handler in http echo; do
    "$IOSERVE" -c "$dir/ioserve.cfg" -o listen=127.0.0.1:0 -o model=epoll \
        -o handler=$handler 2>"$dir/err" &
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
    mode=$handler
    out=$("$LOAD" -m "$mode" -p "$port" -c 10 -P 4 -d 1 -w 0.2 -A 30 -x)
    rc=$?
    echo "$handler: $out"
    [ $rc -eq 0 ] || { echo "smoke: $handler: ioserve-load exit $rc" >&2; status=1; }
    kill -TERM "$pid"
    wait "$pid"
    pid=
done
exit $status
