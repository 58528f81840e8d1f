#!/usr/bin/python3
"""A tiny SMTP next hop that offers SMTPUTF8 and 8BITMIME (smtp-sink offers neither SMTPUTF8 nor a way
to see MAIL FROM parameters, and aiosmtpd is not installed everywhere). Usage: utf8_sink.py PORT LOG.
Appends every command line, and each message as "DATA <bytes>", to LOG as UTF-8. Prints "ready"."""
import socket, sys

port, log = int(sys.argv[1]), sys.argv[2]
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(8)
print("ready", flush=True)

def note(text):
    with open(log, "ab") as f:
        f.write(text + b"\n")

while True:
    conn, _ = srv.accept()
    f = conn.makefile("rb")
    conn.sendall(b"220 utf8-sink ESMTP\r\n")
    while True:
        line = f.readline()
        if not line:
            break
        cmd = line.rstrip(b"\r\n")
        note(cmd)
        verb = cmd[:4].upper()
        if verb == b"EHLO":
            conn.sendall(b"250-utf8-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 ENHANCEDSTATUSCODES\r\n")
        elif verb == b"DATA":
            conn.sendall(b"354 go on\r\n")
            body = b""
            while True:
                l = f.readline()
                if not l or l == b".\r\n":
                    break
                body += l
            note(b"DATA " + body)
            conn.sendall(b"250 2.0.0 Ok\r\n")
        elif verb == b"QUIT":
            conn.sendall(b"221 2.0.0 Bye\r\n")
            break
        else:
            conn.sendall(b"250 2.0.0 Ok\r\n")
    conn.close()
