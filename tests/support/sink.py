#!/usr/bin/python3
"""A real SMTP sink for the integration tests (Debian's python3-aiosmtpd): every transaction is
written as one JSON file {mail_from, rcpt_tos, data} into DIR. Usage: sink.py PORT DIR [--refuse CODE].
Prints "ready" once listening."""
import asyncio, json, os, sys, time
from aiosmtpd.controller import Controller

port, out = int(sys.argv[1]), sys.argv[2]
refuse = None
if len(sys.argv) > 4 and sys.argv[3] == "--refuse-rcpt":
    refuse = sys.argv[4]  # refuse RCPT for addresses containing this text with 550
os.makedirs(out, exist_ok=True)
n = 0

class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if refuse and refuse in address:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        global n
        n += 1
        name = os.path.join(out, "%d-%06d.json" % (os.getpid(), n))
        with open(name + ".tmp", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                       "data": envelope.original_content.decode("utf-8", "surrogateescape")}, f)
        os.rename(name + ".tmp", name)
        return "250 2.0.0 OK"

c = Controller(Handler(), hostname="127.0.0.1", port=port, decode_data=False)
c.start()
print("ready", flush=True)
try:
    while True:
        time.sleep(3600)
except KeyboardInterrupt:
    pass
