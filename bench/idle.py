#!/usr/bin/env python3
"""PSS per idle logged-in session of a server's process tree, at any count up to 100,000.

Usage: bench/idle.py --port PORT --pid PID --count N [--hold SECS] [--user bench --password bench]

Opens N control connections to 127.0.0.1:PORT (from 127.0.0.1, 127.0.0.2, ... in turn, 20,000
per source address, so that a single address's ephemeral ports do not run out), logs each in,
waits until all are in, samples the PSS of PID and its descendants, holds them, then closes
them. "before" is sampled after one login, so that what a server keeps after its first login
(Ferry's pooled argon2 buffer) is not counted as the sessions' cost. Start the server fresh:
memory freed by earlier work is reused and would hide what sessions cost. Prints one JSON line.
Loopback only; every wait is bounded.
"""
import argparse, asyncio, json, os, resource, sys, time

def tree(pid):
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except OSError:
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop(); out.append(p); todo += kids.get(p, [])
    return out

def pss_kib(pid):
    total, procs = 0, 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]); procs += 1
        except OSError:
            pass
    return total, procs

async def reply(r):
    """One FTP reply (multi-line aware); its code."""
    line = await r.readline()
    if len(line) < 4:
        raise ConnectionError("closed")
    code = line[:3]
    if line[3:4] == b"-":
        while True:
            line = await r.readline()
            if not line:
                raise ConnectionError("closed")
            if line[:3] == code and line[3:4] == b" ":
                break
    return int(code)

async def session(i, a, held, gate):
    src = f"127.0.0.{1 + i // 20000}"
    async with gate:
        r, w = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", a.port, local_addr=(src, 0)), 30)
        if await asyncio.wait_for(reply(r), 30) != 220:
            raise ConnectionError("no 220")
        w.write(f"USER {a.user}\r\n".encode()); await w.drain()
        if await asyncio.wait_for(reply(r), 30) != 331:
            raise ConnectionError("no 331")
        w.write(f"PASS {a.password}\r\n".encode()); await w.drain()
        code = await asyncio.wait_for(reply(r), 60)
        if code != 230:
            raise ConnectionError(f"login: {code}")
    held.append((r, w))

async def main(a):
    # One login first (see above).
    one = []
    await session(0, a, one, asyncio.Semaphore(1))
    one[0][1].close()
    await asyncio.sleep(1)
    before, _ = pss_kib(a.pid)
    held, gate, t0 = [], asyncio.Semaphore(256), time.monotonic()
    results = await asyncio.gather(*(session(i, a, held, gate) for i in range(a.count)),
                                   return_exceptions=True)
    errors = [r for r in results if isinstance(r, Exception)]
    opened = time.monotonic() - t0
    await asyncio.sleep(2)
    during, procs = pss_kib(a.pid)
    await asyncio.sleep(max(0.0, a.hold - 2))
    alive = 0
    for r, w in held:
        if not r.at_eof():
            alive += 1
        w.close()
    print(json.dumps({
        "count": a.count, "held": len(held), "alive_after_hold": alive, "errors": len(errors),
        "first_error": repr(errors[0]) if errors else "", "open_secs": round(opened, 2),
        "pss_before_kib": before, "pss_during_kib": during, "processes": procs,
        "kib_per_session": round((during - before) / max(len(held), 1), 3)}))

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--hold", type=float, default=5.0)
    p.add_argument("--user", default="bench")
    p.add_argument("--password", default="bench")
    a = p.parse_args()
    a.count = max(1, min(a.count, 100000)); a.hold = max(0.0, min(a.hold, 600.0))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and a.count + 100 > hard:
        sys.exit(f"idle.py: {a.count} sessions need more descriptors than the hard limit ({hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sys.exit(asyncio.run(main(a)))
