#!/usr/bin/env python3
# Seeds for fuzz_mmio: a driver's initialisation, notifications, interrupts
# and a reset, as 8-byte records (op, flags, offset u16, value u32; see
# fuzz_mmio.c). Run from the repository root.
import struct, os

def w(off, v): return struct.pack('<BBHI', 0, 0x42, off, v)      # 32-bit write
def r(off): return struct.pack('<BBHI', 3, 0x42, off, 0)          # 32-bit read
def ev(op, v): return struct.pack('<BBHI', op, 0, 0, v)
def kick(v): return struct.pack('<BBHI', 7, 2, 0x50, v)           # matched notify

def init(features_hi, qsize):
    s = r(0) + r(4) + r(8) + w(0x70, 0) + w(0x70, 1) + w(0x70, 3)
    s += w(0x14, 0) + r(0x10) + w(0x14, 1) + r(0x10)
    s += w(0x24, 0) + w(0x20, 1 << 29) + w(0x24, 1) + w(0x20, features_hi)
    s += w(0x70, 0xb) + r(0x70)
    for q in range(3):
        base = 0x100000 * (q + 1)
        s += w(0x30, q) + r(0x44) + r(0x34) + w(0x38, qsize)
        s += w(0x80, base) + w(0x84, 0) + w(0x90, base + 0x1000) + w(0x94, 0) + w(0xa0, base + 0x2000) + w(0xa4, 0)
        s += w(0x44, 1)
    return s + w(0x70, 0xf)

os.makedirs('fuzz/corpus/mmio', exist_ok=True)
seeds = {
    'split.bin': init(1, 128) + kick(0) + kick(2) + ev(5, 1) + r(0x60) + w(0x64, 1) + w(0x70, 0),
    'packed-ring-reset.bin': init(1 | 4 | 0x100 | 0x40, 100) + kick(0x00050001) + w(0x30, 1) + w(0xc0, 1)
        + r(0xc0) + w(0x44, 1) + ev(6, 1) + r(0xfc) + struct.pack('<BBHI', 3, 0, 0x104, 0) + w(0x70, 0),
    'needs-reset.bin': init(1, 256) + ev(6, 0) + r(0x70) + w(0x44, 0) + w(0x70, 0),
}
for name, data in seeds.items():
    with open('fuzz/corpus/mmio/' + name, 'wb') as f:
        f.write(data)
