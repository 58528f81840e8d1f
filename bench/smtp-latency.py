#!/usr/bin/python3
"""Acceptance latency: THREADS connections each send MESSAGES/THREADS messages one after another
(MAIL, RCPT, DATA, body, final dot) and time each transaction until its 250.
usage: smtp-latency.py HOST PORT MESSAGES THREADS SIZE  ->  prints "p50 p99 msgs/s" in milliseconds."""
import smtplib, sys, threading, time

host, port, n, threads, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
body = "Subject: latency\r\n\r\n" + ("x" * 76 + "\r\n") * max(1, size // 78)
lat, lock = [], threading.Lock()

def worker(count):
    s = smtplib.SMTP(host, port)
    s.ehlo("latency.test")
    mine = []
    for _ in range(count):
        t = time.perf_counter()
        s.sendmail("bench@example.org", ["sink@example.net"], body)
        mine.append(time.perf_counter() - t)
    s.quit()
    with lock:
        lat.extend(mine)

start = time.perf_counter()
ts = [threading.Thread(target=worker, args=(n // threads,)) for _ in range(threads)]
for t in ts: t.start()
for t in ts: t.join()
elapsed = time.perf_counter() - start
lat.sort()
print("%.2f %.2f %.0f" % (lat[len(lat) // 2] * 1000, lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, len(lat) / elapsed))
