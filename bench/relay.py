#!/usr/bin/env python3
"""A TCP relay on 127.0.0.1 that stands in for a network between a host and
its database: every byte crosses two more sockets and a Python event loop
(about 0.1-0.2 ms a round trip on an idle machine), plus DELAY_MS each way
if given (the event loop sleeps in whole milliseconds).

    python3 bench/relay.py LISTEN_PORT TARGET_PORT [DELAY_MS]

Prints "ready" once listening; runs until killed.
"""
import asyncio
import sys


async def pipe(reader, writer, delay):
    # Each chunk leaves `delay` after it arrived, as on a wire: chunks in
    # flight together are delayed together, not one after another.
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def send():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    sender = asyncio.ensure_future(send())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            queue.put_nowait((loop.time() + delay, data))
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        queue.put_nowait((0, None))
        try:
            await sender
        except ConnectionError:
            pass
        writer.close()


async def main():
    listen_port, target_port = int(sys.argv[1]), int(sys.argv[2])
    delay = float(sys.argv[3]) / 1000 if len(sys.argv) > 3 else 0.0

    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, server_writer, delay),
                             pipe(server_reader, client_writer, delay))

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
