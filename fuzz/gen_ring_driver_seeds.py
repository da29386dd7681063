#!/usr/bin/env python3
"""Seed inputs for fuzz_ring_driver: for each mode (ring format and
features), a driver that adds six buffers of different shapes, kicks, gets
them back from a device that returns ids 0-5, and re-arms notifications.
Encoding: mode, size, then the script (fuzz/fuzz_ring_driver.c)."""
import os, sys

out = sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/ring_driver"
os.makedirs(out, exist_ok=True)
for mode in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 20, 21):
    ops = []
    for k in range(6):
        ops += [8 * (k % 4) + 32 * (1 + k % 3), 10]   # add: k%4 readable, 1+k%3 writable
    ops += [2, 10]                                     # kick decision
    for k in range(6):
        ops += [5, k, 3]                               # the device returns id k
    ops += [3 + 8 * 7, 6, 14, 7]                       # get up to 8; enable, disable; position
    with open(os.path.join(out, f"m{mode:02x}-n4.bin"), "wb") as f:
        f.write(bytes([mode, 4] + ops))
