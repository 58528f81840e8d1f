#!/usr/bin/env python3
"""Drives a spamd-protocol daemon (or rspamd's HTTP /checkv2) with the same messages and prints
messages/second and latency percentiles as one JSON line. Used by bench/spam.sh."""
import json, socket, sys, time, urllib.request, concurrent.futures as cf

def spamd_check(host, port, msg):
    s = socket.create_connection((host, port))
    s.sendall(b"CHECK SPAMC/1.5\r\nContent-length: %d\r\n\r\n" % len(msg) + msg)
    s.shutdown(socket.SHUT_WR)
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    if not out.startswith(b"SPAMD/1.1 0 EX_OK"):
        raise RuntimeError(out[:200])
    return out

def rspamd_check(host, port, msg):
    r = urllib.request.urlopen(urllib.request.Request("http://%s:%d/checkv2" % (host, port), data=msg, method="POST"))
    return r.read()

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
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(clients) as ex:
        lat = list(ex.map(one, msgs))
    wall = time.perf_counter() - t0
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
    print(json.dumps({"n": len(msgs), "secs": round(wall, 3), "msgs_per_s": round(len(msgs) / wall, 2),
                      "p50_ms": round(p(0.5), 2), "p99_ms": round(p(0.99), 2)}))

main()
