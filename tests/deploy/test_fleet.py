#!/usr/bin/env python3
"""deploy.fleet: tools/fleet (make fleet) runs 3 ioserve instances behind
Debian's HAProxy with deploy/haproxy/haproxy.cfg, and during each rolling
operation drives at least 20,000 HTTP requests (keep-alive, mode http) and
100 long-lived TCP sessions (the upper handler, mode tcp) through it:
  swap     zero failed requests, zero broken sessions, every master on
           the other model afterwards, HAProxy never marked one DOWN
  upgrade  the same, every master replaced by one running the new file
  restart  each master's quit_delay is HAProxy's fall x inter plus a
           margin; after one -s quit its /readyz is 503 and HAProxy marks
           it DOWN (once) while it still accepts (a direct connection is
           served, within quit_delay), and gives it no new connection from
           then until it is UP again, so none after its delay ended; zero
           failed requests, and none of them needed HAProxy's retries
           (wretr, wredis 0: retry-on is not what saves them); the
           sessions of a restarted stream master end with a clean close
           (EOF; HAProxy counted no server abort) after quit_delay +
           drain_timeout, not before; the sessions that replace them are
           served by the others.
As root where a network namespace can be made (CI), each instance runs in
its own namespace behind a veth pair; otherwise on loopback ports.  The
test says which it ran.  Skipped (77) without a haproxy program:
`tools/install-deps fleet` installs it, and CI does.

  test_fleet.py SOURCE_DIR BUILD_DIR
"""
import importlib.machinery
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

INSTANCES, REQUESTS, SESSIONS, DRAIN_TIMEOUT = 3, 20000, 100, 3.0


def load_tool(src):
    path = os.path.join(src, "tools", "fleet")
    loader = importlib.machinery.SourceFileLoader("fleet_tool", path)
    spec = importlib.util.spec_from_loader("fleet_tool", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def check_unbroken(op, problems):
    """swap and upgrade: every session lived through the operation."""
    recs = op["sessions"] or []
    if len(recs) != SESSIONS:
        problems.append("%s: %d sessions opened, expected %d (none may be replaced)" %
                        (op["op"], len(recs), SESSIONS))
    for r in recs:
        if r["end"] is not None or r["awaiting"] or r["rounds"] < 2:
            problems.append("%s: session %d broken: end %s, rounds %d, reply outstanding %s" %
                            (op["op"], r["id"], r["end"], r["rounds"], r["awaiting"]))
    for srv, d in op["haproxy"].items():
        if d["chkdown"]:
            problems.append("%s: HAProxy marked %s DOWN" % (op["op"], srv))


def check_common(op, problems):
    if op["status"] != "ok":
        problems.append("%s: %s: %s" % (op["op"], op["status"], op.get("why")))
    if op.get("requests_ok", 0) < REQUESTS:
        problems.append("%s: %d requests served, fewer than %d" %
                        (op["op"], op.get("requests_ok", 0), REQUESTS))
    if op.get("requests_failed"):
        problems.append("%s: %d requests failed: %s" % (op["op"], op["requests_failed"],
                                                        op.get("failures", [])[:5]))
    steps = [s["step"] for s in op.get("steps", [])]
    want = ["%s%d" % (role, i) for i in range(1, INSTANCES + 1) for role in ("web", "stream")]
    if steps != want:
        problems.append("%s: steps %s, expected one per master %s" % (op["op"], steps, want))
    if op.get("sessions") is None:
        problems.append("%s: no session records" % op["op"])
        op["sessions"] = []
    for srv, d in (op.get("haproxy") or {}).items():
        if d["srv_abrt"]:
            problems.append("%s: HAProxy counted %d session(s) aborted by %s" %
                            (op["op"], d["srv_abrt"], srv))


def check_restart(op, problems, want_delay):
    if op.get("quit_delay") != want_delay:
        problems.append("restart: quit_delay %s, expected fall x inter of haproxy.cfg plus the "
                        "margin: %g" % (op.get("quit_delay"), want_delay))
    for srv, d in op["haproxy"].items():
        if d["chkdown"] != 1:
            problems.append("restart: HAProxy marked %s DOWN %d time(s), expected once" %
                            (srv, d["chkdown"]))
        if d["wretr"] or d["wredis"]:
            problems.append("restart: HAProxy retried %d and redispatched %d request(s) of %s: "
                            "without retry-on they would have failed" %
                            (d["wretr"], d["wredis"], srv))
    restarts = op.get("restarts", [])
    if sorted(x["master"] for x in restarts) != sorted(op["haproxy"]):
        problems.append("restart: masters restarted %s, expected %s" %
                        ([x["master"] for x in restarts], sorted(op["haproxy"])))
    for x in restarts:
        if x["readyz"] != 503 or "accepting for" not in x["readyz_body"]:
            problems.append("restart: %s: /readyz after -s quit: %s %r" %
                            (x["master"], x["readyz"], x["readyz_body"]))
        if not x["down_while_accepting"] or x["down_s"] >= x["quit_delay"]:
            problems.append("restart: HAProxy took %s out %.2f s after -s quit, not while it "
                            "still accepted (quit_delay %g s, a direct connection served: %s)" %
                            (x["master"], x["down_s"], x["quit_delay"],
                             x["down_while_accepting"]))
        if x["sent_while_down"]:
            problems.append("restart: HAProxy sent %s %d connection(s) after it was DOWN" %
                            (x["master"], x["sent_while_down"]))
        if any(x["retried"].values()):
            problems.append("restart: HAProxy retried requests meant for %s: %s" %
                            (x["master"], x["retried"]))
    windows = op.get("drain_windows", [])
    if len(windows) != INSTANCES:
        problems.append("restart: %d stream restarts recorded" % len(windows))
    ended = [r for r in op["sessions"] if r["end"] is not None]
    for r in ended:
        if r["end"] != "eof" or r["awaiting"]:
            problems.append("restart: session %d ended by %s%s, not a clean close" %
                            (r["id"], r["end"], " with a reply outstanding" if r["awaiting"]
                             else ""))
        # A window opens at the quit plus quit_delay plus drain_timeout: none
        # may end before.
        elif not any(lo <= r["ended"] <= hi for lo, hi in windows):
            problems.append("restart: session %d closed at %.2f, outside every restarted "
                            "master's [quit + quit_delay + drain_timeout, exit] %s" %
                            (r["id"], r["ended"], windows))
    if len(ended) < INSTANCES:
        problems.append("restart: only %d session(s) ended: each stream restart should end "
                        "the sessions it served" % len(ended))
    # Every session ended was replaced, and the replacements served.
    live = [r for r in op["sessions"] if r["end"] is None]
    if len(live) != SESSIONS or any(r["rounds"] < 1 or r["awaiting"] for r in live):
        problems.append("restart: %d sessions alive at the end (expected %d, each answered)" %
                        (len(live), SESSIONS))
    for s in op["steps"]:
        if s["step"].startswith("stream") and s["sessions_ended"] == 0:
            problems.append("restart: %s closed no session" % s["step"])


def leftovers(pid, fleet_dir):
    """What a fleet tool run as pid left behind: namespaces, veths (its
    names carry pid % 100000), processes running from or in its directory."""
    tag = "%d" % (pid % 100000)
    left = []
    if os.geteuid() == 0 and shutil.which("ip"):
        ns = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE, text=True).stdout
        links = subprocess.run(["ip", "-o", "link"], stdout=subprocess.PIPE, text=True).stdout
        left += re.findall(r"iosfleet-%s-\d+" % tag, ns)
        left += re.findall(r"ifl%sh\d+" % tag, links)
    for p in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                if fleet_dir.encode() in f.read():
                    left.append("process %s" % p)
        except (OSError, ValueError):
            pass
    if os.path.exists(fleet_dir):
        left.append(fleet_dir)
    return left


def interrupted_run(src, build, net):
    """Ctrl-C in the middle of a restart: the fleet tool tears everything
    down and exits 130.  '' or what went wrong."""
    argv = [sys.executable, os.path.join(src, "tools", "fleet"), "--build", build,
            "--instances", "2", "--requests", "2000", "--sessions", "10", "--ops", "restart",
            "--drain-timeout", str(DRAIN_TIMEOUT), "--net", net]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, fleet_dir = [], None
    try:
        for line in proc.stdout:
            out.append(line)
            m = re.search(r"; directory (\S+)$", line)
            if m:
                fleet_dir = m.group(1)
            if line.startswith("  restart web1"):
                proc.send_signal(signal.SIGINT)
                break
        rest, _ = proc.communicate(timeout=60)
        out.append(rest)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return "tools/fleet did not end within 60 s of SIGINT:\n" + "".join(out)
    if proc.returncode != 130 or not fleet_dir:
        return "tools/fleet exited %d after SIGINT:\n%s" % (proc.returncode, "".join(out))
    left = leftovers(proc.pid, fleet_dir)
    if left:
        return "after SIGINT, left behind: %s" % left
    print("Ctrl-C during a restart: torn down, exit 130, nothing left behind")
    return ""


def main():
    src, build = sys.argv[1:3]
    tool = load_tool(src)
    if not tool.haproxy_binary():
        print("SKIP: no haproxy program (install it: tools/install-deps fleet)")
        return 77
    why_not_netns = tool.Netns.probe()
    net = "loopback" if why_not_netns else "netns"
    print("deploy.fleet: the %s variant (%s)" % (
        net, "each instance in its own network namespace, joined by a veth pair"
        if net == "netns" else "loopback ports: no network namespace here: " + why_not_netns))

    with tempfile.TemporaryDirectory(prefix="ioserve-fleet-test.") as tmp:
        out = os.path.join(tmp, "fleet.json")
        argv = [sys.executable, os.path.join(src, "tools", "fleet"), "--build", build,
                "--instances", str(INSTANCES), "--requests", str(REQUESTS),
                "--sessions", str(SESSIONS), "--drain-timeout", str(DRAIN_TIMEOUT),
                "--net", net, "--json", out] + sys.argv[3:]
        print("$ " + " ".join(argv), flush=True)
        proc = subprocess.Popen(argv)
        try:
            rc = proc.wait(timeout=240)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            proc.wait()
            print("FAIL: tools/fleet did not finish within 240 s", file=sys.stderr)
            return 1
        with open(out) as f:
            res = json.load(f)

    problems = []
    left = leftovers(proc.pid, res["dir"])
    if left:
        problems.append("tools/fleet left behind: %s" % left)
    if len(sys.argv) == 3:  # not when trying the fleet with other options
        why = interrupted_run(src, build, net)
        if why:
            problems.append(why)
    if res["variant"] != net:
        problems.append("tools/fleet ran the %s variant, not %s" % (res["variant"], net))
    ops = {op["op"]: op for op in res["ops"]}
    if sorted(ops) != ["restart", "swap", "upgrade"]:
        problems.append("operations run: %s (%s)" % (sorted(ops), res.get("why")))
    if "swap" in ops:
        op = ops["swap"]
        check_common(op, problems)
        check_unbroken(op, problems)
        for s in op.get("steps", []):
            if not re.match(r"epoll -> poll \(ready: generation 2 serving with model poll\)",
                            s["detail"]):
                problems.append("swap: %s: %s" % (s["step"], s["detail"]))
    if "upgrade" in ops:
        op = ops["upgrade"]
        check_common(op, problems)
        check_unbroken(op, problems)
        for s in op.get("steps", []):
            if not re.match(r"master \d+ -> \d+ \(the new binary\)", s["detail"]):
                problems.append("upgrade: %s: %s" % (s["step"], s["detail"]))
    if "restart" in ops:
        check_common(ops["restart"], problems)
        if ops["restart"]["status"] != "failed" or ops["restart"].get("haproxy"):
            with open(os.path.join(src, "deploy", "haproxy", "haproxy.cfg")) as f:
                want_delay = tool.haproxy_detection_s(f.read()) + tool.QUIT_DELAY_MARGIN_S
            check_restart(ops["restart"], problems, want_delay)
    if rc != 0 and not problems:
        problems.append("tools/fleet exited %d" % rc)
    if problems:
        print("FAIL (%s variant):\n  %s" % (net, "\n  ".join(problems[:30])), file=sys.stderr)
        return 1
    print("deploy.fleet: %s variant passed: %s" % (net, "; ".join(
        "%s %d requests, %d sessions" % (o["op"], o.get("requests_ok", 0),
                                         len(o.get("sessions") or []))
        for o in res["ops"] if o["status"] == "ok")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
