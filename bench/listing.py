#!/usr/bin/env python3
"""Server-side listing time of a 10,000-entry folder, without a client's per-line cost.

Usage: bench/listing.py PORT... (user bench/bench, folder `many`, loopback). For each of NLST,
LIST and MLSD, the median of 15 runs of: PASV and connect; the command until its 150 reply;
the data until the server closes it (read in 1 MiB chunks); the 226 reply.
"""
import socket, time, sys, re, statistics
def run(port, cmd, n=15):
    c = socket.create_connection(("127.0.0.1", port)); f = c.makefile("rb")
    def reply():
        line = f.readline()
        while line[3:4] == b"-" or not line[:3].isdigit():
            nxt = f.readline()
            if nxt[:3] == line[:3] and nxt[3:4] == b" ": line = nxt; break
            line = nxt
        return line
    def send(s): c.sendall(s.encode() + b"\r\n"); return reply()
    reply(); send("USER bench"); send("PASS bench"); send("TYPE A")
    res = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = send("PASV"); nums = list(map(int, re.search(rb"(\d+,\d+,\d+,\d+,\d+,\d+)", r).group(1).split(b",")))
        d = socket.create_connection(("127.0.0.1", nums[4]*256+nums[5])); t1 = time.perf_counter()
        c.sendall(f"{cmd} many\r\n".encode()); r150 = reply(); t2 = time.perf_counter()
        total = 0
        while True:
            b = d.recv(1 << 20)
            if not b: break
            total += len(b)
        t3 = time.perf_counter(); r226 = reply(); t4 = time.perf_counter(); d.close()
        res.append((t1-t0, t2-t1, t3-t2, t4-t3, total))
    med = [round(statistics.median(x[i] for x in res)*1e3, 2) for i in range(4)]
    print(port, cmd, "pasv+connect", med[0], "to150", med[1], "data", med[2], "to226", med[3], "bytes", res[0][4])
for p in map(int, sys.argv[1:]):
    for cmd in ("NLST", "LIST", "MLSD"):
        try: run(p, cmd)
        except Exception as e: print(p, cmd, e)
