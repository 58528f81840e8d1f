#!/usr/bin/env python3
"""Drives a spamd-protocol daemon (or rspamd's HTTP /checkv2) with the same messages and prints
messages/second and latency percentiles as one JSON line. Used by bench/spam.sh.

With CPU_PID=PID in the environment it also reports the server's CPU time per message: utime+stime
(and that of reaped children) of PID and every process below it, read from /proc just before and
a second after the timed messages (the one warm-up message is outside), so a daemon that forks workers
(spamd's children, rspamd's workers) is counted whole. Wall-clock rates on a shared machine measure
the neighbours too; CPU per message says what the daemon itself spent."""
import json, os, socket, sys, time, concurrent.futures as cf

# Seconds between the last answer and reading the daemons' CPU time (see main).
SETTLE = float(os.environ.get("CPU_SETTLE", "1.0"))

def tree_ticks(root):
    """Clock ticks used by process `root` and all its descendants (live ones, plus the children they
    reaped), or None when root is gone."""
    procs = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        # After the ")": state, ppid, ..., utime (index 11), stime, cutime, cstime.
        procs[int(d)] = (int(rest[1]), sum(int(x) for x in rest[11:15]))
    if root not in procs:
        return None
    total, todo = 0, [root]
    while todo:
        p = todo.pop()
        total += procs[p][1]
        todo.extend(c for c, (pp, _) in procs.items() if pp == p)
    return total

def read_all(s):
    """The whole answer, up to the server's close; closes the socket."""
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    return out

def spamd_check(host, port, msg):
    s = socket.create_connection((host, port))
    s.sendall(b"CHECK SPAMC/1.5\r\nContent-length: %d\r\n\r\n" % len(msg) + msg)
    s.shutdown(socket.SHUT_WR)
    out = read_all(s)
    if not out.startswith(b"SPAMD/1.1 0 EX_OK"):
        raise RuntimeError(out[:200])
    return out

def rspamd_check(host, port, msg):
    # A plain socket, as for spamd: urllib's request and response machinery cost ~0.2 ms of client
    # time a message here, which counted against rspamd alone (~10% of its wall time a message).
    s = socket.create_connection((host, port))
    s.sendall(b"POST /checkv2 HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
              % (host.encode(), len(msg)) + msg)
    out = read_all(s)
    if not (out.startswith(b"HTTP/1.") and out[9:12] == b"200"):
        raise RuntimeError(out[:200])
    return out

def main():
    kind, host, port, clients = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    files = sys.argv[5:]
    msgs = [open(f, "rb").read() for f in files]
    fn = spamd_check if kind == "spamd" else rspamd_check
    fn(host, port, msgs[0])  # warm-up
    lat = []
    def one(m):
        t = time.perf_counter()
        fn(host, port, m)
        return time.perf_counter() - t
    pid = int(os.environ["CPU_PID"]) if os.environ.get("CPU_PID") else None
    c0 = tree_ticks(pid) if pid else None
    t0 = time.perf_counter()
    if clients == 1:
        # One client sends one request after another. A pool of one worker would hand every
        # request to another thread and its answer back (~0.1 ms a request here): client time
        # that counted against the fastest server most.
        lat = [one(m) for m in msgs]
    else:
        with cf.ThreadPoolExecutor(clients) as ex:
            lat = list(ex.map(one, msgs))
    wall = time.perf_counter() - t0
    # Work a daemon leaves for after its answers (correo's learner thread commits auto-learn lessons
    # up to 0.5 s later, and tokenizes them then) is its work too: read the CPU time once it is done.
    if pid:
        time.sleep(SETTLE)
    c1 = tree_ticks(pid) if pid else None
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
    out = {"n": len(msgs), "secs": round(wall, 3), "msgs_per_s": round(len(msgs) / wall, 2),
           "p50_ms": round(p(0.5), 2), "p99_ms": round(p(0.99), 2)}
    if c0 is not None and c1 is not None:
        out["cpu_ms_per_msg"] = round((c1 - c0) * 1000 / os.sysconf("SC_CLK_TCK") / len(msgs), 2)
    print(json.dumps(out))

main()
