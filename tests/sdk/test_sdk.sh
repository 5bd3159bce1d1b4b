#!/bin/bash
# sdk.example: the plugin SDK as a user outside the tree meets it.
#   test_sdk.sh SOURCE_DIR BUILD_DIR
#
# 1. `cmake --install BUILD --prefix TMP`, and the installed tree is whole,
#    names no path of the build or source tree, and its systemd units parse;
# 2. examples/ppoll-model, copied out of the tree, builds with its Makefile
#    given only PKG_CONFIG_PATH=TMP/lib/pkgconfig, and installs into the
#    pkg-config plugindir;
# 3. the installed ioserve finds its plugins without being told (its
#    config leaves plugin_dir to the default), lists ppoll's knobs, and
#    `-t` accepts the plugin by name and by path and refuses a bad knob;
# 4. it serves echo through ppoll, hot-swaps ppoll -> epoll -> ppoll (by
#    path) with `-s reload` while a connection stays open, then drains on
#    `-s quit` and exits 0;
# 5. ioserve-it runs scenarios against the installed ppoll.so, as
#    docs/writing-a-plugin.md tells plugin authors to: echo, half_close
#    and every hand-over scenario of tests/integration/scenarios.cmake
#    (the example gives and adopts: proven as an author proves theirs).
# Every server started here is reaped; nothing else is signalled.
set -u
src=$1 build=$2
tmp=$(mktemp -d /tmp/ioserve-sdk.XXXXXX) || exit 1
prefix=$tmp/prefix
server_pid=
log=$tmp/server.log

cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null
    fi
    [ -n "$server_pid" ] && wait "$server_pid" 2>/dev/null
    exec 3>&- 4>&- 2>/dev/null
    if [ -n "${SDK_KEEP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
    echo "FAIL: $*" >&2
    if [ -s "$log" ]; then echo "--- server log:" >&2; tail -n 40 "$log" >&2; fi
    exit 1
}
step() { echo "--- $*"; }

# ------------------------------------------------------------- 1. install
step "cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log" >&2; fail "cmake --install failed"; }
for f in bin/ioserve lib/ioserve/plugins/epoll.so include/ioserve/plugin.h \
         lib/pkgconfig/ioserve-plugin.pc etc/ioserve/ioserve.cfg \
         etc/ioserve/ioserve.cfg.default share/man/man8/ioserve.8 \
         share/man/man5/ioserve.cfg.5 lib/systemd/system/ioserve.service \
         lib/systemd/system/ioserve.socket share/ioserve/grafana/ioserve.json \
         share/ioserve/prometheus/prometheus.yml; do
    [ -e "$prefix/$f" ] || fail "not installed: $f"
done
cfg=$prefix/etc/ioserve/ioserve.cfg
settings=$(grep -v '^[[:space:]]*#' "$cfg")
if printf '%s\n' "$settings" | grep -nF -e "$src" -e "$build" -e '"../'; then
    fail "the installed config points into the source or build tree"
fi
grep -qx "pid_file = \"$prefix/var/run/ioserve.pid\";" "$cfg" ||
    fail "installed pid_file is not under the run-state dir: $(grep '^pid_file' "$cfg")"
grep -q '^plugin_dir' "$cfg" && fail "the installed config sets plugin_dir"
grep -qx "ExecStart=$prefix/bin/ioserve -c $cfg" "$prefix/lib/systemd/system/ioserve.service" ||
    fail "ioserve.service does not start $prefix/bin/ioserve -c $cfg"
ioserve=$prefix/bin/ioserve
"$ioserve" -t -c "$cfg" >/dev/null || fail "the installed config fails ioserve -t"
# systemd-analyze prints what it cannot parse (and still exits 0).
if command -v systemd-analyze >/dev/null 2>&1; then
    out=$(cd "$prefix/lib/systemd/system" && MANPATH=$prefix/share/man \
          systemd-analyze verify ./ioserve.service ./ioserve.socket 2>&1) ||
        fail "systemd-analyze verify failed: $out"
    [ -z "$out" ] || fail "systemd-analyze verify: $out"
else
    skipped="systemd-analyze is not installed (Debian package systemd): the units were not verified"
fi

# ---------------------------------------------------- 2. build the example
step "build examples/ppoll-model against the installed SDK"
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
version=$("$ioserve" -V | awk '{print $2}')
[ "$(pkg-config --modversion ioserve-plugin)" = "$version" ] ||
    fail "pkg-config version '$(pkg-config --modversion ioserve-plugin)' is not ioserve's '$version'"
plugindir=$(pkg-config --variable=plugindir ioserve-plugin)
[ "$plugindir" = "$prefix/lib/ioserve/plugins" ] || fail "plugindir is '$plugindir'"
pkg-config --cflags ioserve-plugin | grep -qF -- "-I$prefix/include" ||
    fail "cflags lack -I$prefix/include: $(pkg-config --cflags ioserve-plugin)"
cp -r "$src/examples/ppoll-model" "$tmp/ppoll"
rm -f "$tmp/ppoll/ppoll.so"
make -s -C "$tmp/ppoll" CFLAGS="-O2 -g -Wall -Wextra -Werror" >"$tmp/make.log" 2>&1 ||
    { cat "$tmp/make.log" >&2; fail "the example does not build"; }
make -s -C "$tmp/ppoll" install >>"$tmp/make.log" 2>&1 ||
    { cat "$tmp/make.log" >&2; fail "make install failed"; }
[ -f "$plugindir/ppoll.so" ] || fail "make install did not put ppoll.so into $plugindir"
exports=$(nm -D --defined-only "$tmp/ppoll/ppoll.so" | awk '{print $3}' | sort | tr '\n' ' ')
[ "$exports" = "ios_model model_run " ] || fail "ppoll.so exports '$exports'"

# ------------------------------------------------------ 3. list and check
step "--list-models and -t"
list=$("$ioserve" -c "$cfg" --list-models) || fail "--list-models failed"
printf '%s\n' "$list" | grep -qx "models in $plugindir:" ||
    fail "the installed ioserve does not default to its plugin dir: $list"
printf '%s\n' "$list" | grep -q "^  ppoll .*out-of-tree example" || fail "ppoll not listed: $list"
printf '%s\n' "$list" | grep -qF "models.ppoll.accept_batch = 64 (1..4096)  [int]" ||
    fail "ppoll's knobs not listed: $list"
"$ioserve" -t -c "$cfg" -o model=ppoll -o models.ppoll.accept_batch=8 >/dev/null ||
    fail "-t refuses model ppoll"
"$ioserve" -t -c "$cfg" -o "model=$tmp/ppoll/ppoll.so" >/dev/null ||
    fail "-t refuses model $tmp/ppoll/ppoll.so"
out=$("$ioserve" -t -c "$cfg" -o model=ppoll -o models.ppoll.accept_batch=0 2>&1) &&
    fail "-t accepts models.ppoll.accept_batch = 0"
printf '%s\n' "$out" | grep -q "accept_batch" || fail "unclear knob error: $out"
out=$("$ioserve" -t -c "$cfg" -o model=ppoll -o models.ppoll.acept_batch=8 2>&1) &&
    fail "-t accepts a misspelt knob"
printf '%s\n' "$out" | grep -q "did you mean 'models.ppoll.accept_batch'" || fail "no typo hint: $out"

# ------------------------------------------------- 4. serve and hot swap
# Bash's /dev/tcp is the client: no netcat needed.
roundtrip() { # FD MESSAGE
    local reply
    printf '%s\n' "$2" >&"$1" || return 1
    IFS= read -r -t 5 reply <&"$1" || return 1
    [ "$reply" = "$2" ]
}
wait_log() { # PATTERN SECONDS
    for _ in $(seq $(($2 * 10))); do
        grep -q "$1" "$log" && return 0
        kill -0 "$server_pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
set_model() { sed -i "s|^model = .*|model = \"$1\";|" "$cfg"; }

step "serve through ppoll"
set_model ppoll
"$ioserve" -c "$cfg" -o listen=127.0.0.1:0 >"$log" 2>&1 &
server_pid=$!
wait_log "listening on 127.0.0.1:[0-9]" 10 || fail "the server did not start"
port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$log" | head -n 1)
grep -q "(model ppoll," "$log" || fail "not serving model ppoll"
exec 3<>"/dev/tcp/127.0.0.1/$port" || fail "cannot connect to port $port"
roundtrip 3 "hello ppoll" || fail "no echo through ppoll"

step "hot swap ppoll -> epoll"
exec 4<>"/dev/tcp/127.0.0.1/$port" || fail "cannot connect"
roundtrip 4 "opened on ppoll" || fail "no echo through ppoll"
exec 3>&-
set_model epoll
"$ioserve" -c "$cfg" -s reload || fail "-s reload failed"
wait_log "generation 2 serving" 15 || fail "generation 2 (epoll) did not start"
wait_log "ppoll: draining" 5 || fail "the ppoll generation did not drain"
roundtrip 4 "still served by ppoll" || fail "the open connection broke in the swap"
exec 3<>"/dev/tcp/127.0.0.1/$port" || fail "cannot connect after the swap"
roundtrip 3 "hello epoll" || fail "no echo through epoll"
exec 4>&-
wait_log "generation 1 drained in" 10 || fail "the ppoll generation did not finish"
exec 3>&-

step "hot swap epoll -> ppoll (by path)"
set_model "$tmp/ppoll/ppoll.so"
"$ioserve" -c "$cfg" -s reload || fail "-s reload failed"
wait_log "generation 3 serving" 15 || fail "generation 3 (ppoll by path) did not start"
exec 3<>"/dev/tcp/127.0.0.1/$port" || fail "cannot connect after the swap back"
roundtrip 3 "hello again, ppoll" || fail "no echo through ppoll after the swap back"
exec 3>&-

step "-s quit"
"$ioserve" -c "$cfg" -s quit || fail "-s quit failed"
for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$server_pid" 2>/dev/null && fail "the server did not exit within 10 s of -s quit"
wait "$server_pid"
rc=$?
server_pid=
[ $rc -eq 0 ] || fail "the server exited $rc after -s quit"
[ -e "$prefix/var/run/ioserve.pid" ] && fail "the pid file was left behind"

# ------------------------------------------- 5. the integration scenarios
it=$build/tests/ioserve-it
[ -x "$it" ] || fail "$it is not built"
handover=$(sed -n '/^set(IT_MODEL_SCENARIOS/,/^)/s/^  \(handover_[a-z0-9_]*\)$/\1/p' \
               "$src/tests/integration/scenarios.cmake")
printf '%s\n' "$handover" | grep -qx handover_rotation ||
    fail "no handover_* scenario read from tests/integration/scenarios.cmake: '$handover'"
# handover_abi11 rotates through the ABI 1.1 fixture built with the tests.
abi11=$build/tests/abi11/ppoll11.so
[ -r "$abi11" ] || fail "$abi11 is not built"
for scenario in echo half_close $handover; do
    step "ioserve-it $scenario $plugindir/ppoll.so"
    IOSERVE_BIN=$ioserve IOSERVE_PLUGIN_DIR=$plugindir IOSERVE_ABI11_PLUGIN=$abi11 \
        "$it" "$scenario" "$plugindir/ppoll.so" >"$tmp/it.log" 2>&1 ||
        { cat "$tmp/it.log" >&2; fail "ioserve-it $scenario failed with ppoll.so"; }
done
# Everything else was checked; ctest reports the part that was not (77).
if [ -n "${skipped-}" ]; then
    echo "SKIP: $skipped"
    exit 77
fi
echo "ok"
