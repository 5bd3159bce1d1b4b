"""What the dist/ tests share: the real ioserve started on loopback (ports
read from its log), its /metrics scraped and named, the list of what this
tree does not have yet (awaiting-merge), and every process they start
reaped, even when a check fails or the test itself is killed."""
import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
_PR_SET_PDEATHSIG = 1


class Failure(Exception):
    """A check that failed: the test prints it and exits 1."""


def _die_with_parent():
    # A test killed by ctest's timeout takes its servers with it.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(argv, log_path, **kw):
    """argv with stdout and stderr to log_path, killed if the test dies."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent, **kw)


def reap(proc, grace_s=5.0):
    """SIGTERM, then SIGKILL after grace_s; always waited for."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def free_port():
    """A loopback port nobody listens on now, for a program that cannot
    take port 0 and say which it got (Prometheus)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5.0):
    """(status code, body text) of GET url."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


class Ioserve:
    """build/ioserve on 127.0.0.1 port 0 with status_listen, its config
    (tmp/<name>.cfg) made of `settings` (key -> value text) over the
    defaults below."""

    def __init__(self, binary, plugin_dir, tmp, settings=None, name="ioserve"):
        self.binary, self.tmp = os.path.abspath(binary), tmp
        cfg = {"listen": '"127.0.0.1:0"', "status_listen": '"127.0.0.1:0"',
               "plugin_dir": '"%s"' % os.path.abspath(plugin_dir), "model": '"epoll"',
               "handler": '"echo"', "workers": "2", "log_level": '"info"', "drain_timeout": "5",
               "pid_file": '"%s/ioserve.pid"' % tmp}
        cfg.update(settings or {})
        self.cfg = os.path.join(tmp, name + ".cfg")
        with open(self.cfg, "w") as f:
            for k, v in cfg.items():
                f.write("%s = %s;\n" % (k, v))
        self.log = os.path.join(tmp, name + ".log")
        self.proc = None
        self.port = self.status_port = 0

    def check(self):
        """Exit status of `ioserve -t` on the config (0: accepted)."""
        return subprocess.run([self.binary, "-t", "-c", self.cfg], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=30).returncode

    def start(self, timeout_s=10.0):
        self.proc = spawn([self.binary, "-c", self.cfg], self.log)
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            text = self.log_text()
            m = re.search(r"listening on 127\.0\.0\.1:(\d+) ", text)
            s = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/", text)
            if m and s:
                self.port, self.status_port = int(m.group(1)), int(s.group(1))
                return self
            if self.proc.poll() is not None:
                raise Failure("ioserve exited with %s before listening:\n%s" %
                              (self.proc.returncode, text))
            time.sleep(0.02)
        raise Failure("ioserve did not listen within %.0f s:\n%s" % (timeout_s, self.log_text()))

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def metrics(self):
        code, body = http_get("http://127.0.0.1:%d/metrics" % self.status_port)
        if code != 200:
            raise Failure("GET /metrics: %d" % code)
        return body

    def stop(self):
        reap(self.proc)


def exported_names(exposition):
    """Every metric name a /metrics page exports, from its TYPE lines: a
    family's name, and for a histogram its _bucket, _sum and _count."""
    names = set()
    for m in re.finditer(r"^# TYPE (\S+) (\S+)$", exposition, re.M):
        name, kind = m.groups()
        names.add(name)
        if kind == "histogram":
            names.update(name + s for s in ("_bucket", "_sum", "_count"))
        elif kind == "summary":
            names.update(name + s for s in ("_sum", "_count"))
    return names


def awaiting_merge():
    """tests/dist/awaiting-merge: {(kind, name): why} of what the dist
    tests use before this tree has it."""
    out = {}
    with open(os.path.join(HERE, "awaiting-merge")) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                kind, name, why = (line.split(None, 2) + ["", ""])[:3]
                out[(kind, name)] = why
    return out


def main(test):
    """Runs test(); a Failure or an assertion exits 1 with its message."""
    try:
        sys.exit(test() or 0)
    except Failure as e:
        print("FAIL: %s" % e, file=sys.stderr)
        sys.exit(1)
