#!/usr/bin/python3
"""The classic asyncio line server plugd grew out of: asyncio.start_server, a handle_request
coroutine that reads a line, awaits slow work (--delay-ms, the "database query"), and answers
"Hello, <line>". With --uvloop, the same code on uvloop's event loop (Debian: python3-uvloop).

Prints "listening on 127.0.0.1:PORT" once it accepts; bench/compare.sh reads that line.
"""
import argparse
import asyncio
import sys


async def main(args):
    delay = args.delay_ms / 1000

    async def handle_request(reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                if delay:
                    await asyncio.sleep(delay)
                writer.write(b"Hello, " + line.rstrip(b"\r\n") + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle_request, "127.0.0.1", args.port, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    print(f"listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=int, default=0)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()
    try:
        asyncio.run(main(args))
    except KeyboardInterrupt:
        pass
