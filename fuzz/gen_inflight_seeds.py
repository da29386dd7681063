#!/usr/bin/env python3
"""Seed inputs for fuzz_inflight: for split and packed rings (with and
without IN_ORDER), a fresh region and a ring of size 8 holding six
buffers, and scripts that pop, push, flush and restart in between.
Encoding (fuzz/fuzz_inflight.c): mode, size, then a body whose first
quarter is the region and the rest guest memory (descriptors at 0, driver
area at 0x1000, device area at 0x2000), then the script, an eighth of it."""
import os, struct, sys

out = sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/inflight"
os.makedirs(out, exist_ok=True)
NUM, BODY = 8, 16384
scripts = {
    "pop-push": [4 * 5, 1 + 4 * 2 + 0x80, 3, 0, 1 + 4 * 3, 2, 3, 0, 1 + 0x80],
    "crash-held": [4 * 5, 3, 0, 1 + 4 * 5 + 0x80, 3],
    "crash-unflushed": [4 * 3, 1 + 4 * 2, 3, 4 * 2, 1 + 0x80, 3, 0, 1],
}
for mode in (0, 1, 8, 9):
    packed = mode & 1
    mem = bytearray(BODY - BODY // 4)
    for i in range(6):
        addr, ln = 0x2800 + 64 * i, 32
        if packed:
            flags = 0x80 | (2 if i % 2 else 0)       # AVAIL in lap 1, WRITE on odd ones
            struct.pack_into("<QIHH", mem, 16 * i, addr, ln, i, flags)
        else:
            struct.pack_into("<QIHH", mem, 16 * i, addr, ln, 2 if i % 2 else 0, 0)
            struct.pack_into("<H", mem, 0x1000 + 4 + 2 * i, i)
    if not packed:
        struct.pack_into("<H", mem, 0x1002, 6)        # avail->idx
    region = bytes(BODY // 4)
    for name, ops in scripts.items():
        body = region + bytes(mem)
        script = bytes(ops) + bytes(max(0, (len(body) + 2) // 7 - len(ops)))
        with open(os.path.join(out, f"m{mode:02x}-{name}.bin"), "wb") as f:
            f.write(bytes([mode, 3]) + body + script)   # size byte 3: split 2^3, packed 1 + 3 % 64 = 4
