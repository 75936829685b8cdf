#!/usr/bin/env python3
"""asyncio_tls_service.py - the HTTPS server test_tls.py's asyncio group
drives: asyncio.start_server with an ssl context, so TLS runs in memory
BIOs (ssl.SSLObject): the SSL calls touch no socket, and the socket
carries records the program moves itself. No tracing code at all.

Each request (HTTP/1.1, keep-alive, no body) names itself in X-Test-Token;
the handler writes "served token=T" to stderr and answers 200 with the
body "token T\\n". After binding 127.0.0.1 port 0 it writes its port and a
newline to --ready-fd and closes it. It must never read a request body or
answer anything but the requests it parsed.

    python3 asyncio_tls_service.py --cert C --key K --ready-fd N
"""
import argparse
import asyncio
import os
import ssl
import sys


async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            token = "?"
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"x-test-token":
                    token = value.strip().decode()
            sys.stderr.write("served token=%s\n" % token)
            sys.stderr.flush()
            body = b"token %s\n" % token.encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--ready-fd", type=int, required=True)
    args = ap.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=ctx)
    os.write(args.ready_fd, b"%d\n" % server.sockets[0].getsockname()[1])
    os.close(args.ready_fd)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
