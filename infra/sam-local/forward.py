#!/usr/bin/env python3
"""LocalStack as the function containers see it: a TCP forwarder from the container
network's gateway to LocalStack on the host's loopback.

    python3 infra/sam-local/forward.py --allow 10.88.0.0/16 --to 127.0.0.1:4566 --port-file F

Why: `sam local --docker-network host` does not put the container in the host's network
(SAM 1.170 only skips connecting it to a named network), so a function's 127.0.0.1 is its
own. The containers reach the host at the bridge gateway (podman's 10.88.0.1), but the
gateway address exists only while a container runs, so this listens on every address and
answers only peers inside --allow: nothing outside the container network gets LocalStack.
Writes the port it listens on to --port-file, then runs until killed.
"""
import argparse
import asyncio
import ipaddress
import sys


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--allow", required=True, help="the container network, e.g. 10.88.0.0/16")
    p.add_argument("--to", required=True, help="HOST:PORT to forward to")
    p.add_argument("--port-file", required=True)
    a = p.parse_args()
    allow = ipaddress.ip_network(a.allow)
    host, port = a.to.rsplit(":", 1)

    async def serve(reader, writer):
        peer = ipaddress.ip_address(writer.get_extra_info("peername")[0])
        if peer not in allow:
            print(f"forward.py: refused {peer} (not in {allow})", file=sys.stderr)
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError as e:
            print(f"forward.py: {a.to}: {e}", file=sys.stderr)
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(serve, "0.0.0.0", 0)
    with open(a.port_file, "w", encoding="utf-8") as f:
        f.write(str(server.sockets[0].getsockname()[1]))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
