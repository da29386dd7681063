#!/usr/bin/env python3
# Seeds for fuzz_admin: a managed device initialised by commands, a block
# request placed in guest memory by stores and served, a reset (see
# fuzz_admin.c for the step encoding). Run from the repository root.
import os, struct

GPA = 0x10000000
OPS = [0x0410, 0x0411, 0x0412, 0x0413, 0x0414, 0x0415, 0x0416, 0x0417, 0x0420, 0x0421, 0x0422, 0x0424, 0x0425,
       0x0426, 0x0430, 0x0401, 0x0000, 0x7fff, 0x0431, 0x0432, 0x0433, 0x0434]

def cmd(op, data=b'', cut=7, room=64):
    return bytes([0, OPS.index(op), cut, room, len(data)]) + data

def store(off, data):
    assert off % 64 == 0 and len(data) < 256
    return bytes([2]) + struct.pack('<HB', off // 64, len(data)) + data

def status(s): return cmd(0x0413, bytes([s]) + bytes(7))
def queue(op, q, flag=0): return cmd(op, struct.pack('<HB5x', q, flag))
PROCESS = bytes([3])

def init(features, packed, mmu=b''):
    s = status(0) + status(1) + status(3) + cmd(0x0410) + cmd(0x0411, struct.pack('<Q', features)) + status(0xb)
    s += mmu
    s += cmd(0x0420, struct.pack('<HH4xQQQ', 0, 16, GPA, GPA + 0x1000, GPA + 0x2000))
    s += queue(0x0425, 0, 1) + queue(0x0422, 0, 1) + queue(0x0421, 0) + cmd(0x0426, bytes([1]) + bytes(7))
    return s + status(0xf) + cmd(0x0416, struct.pack('<II', 0, 8))

def split_read():
    desc = struct.pack('<QIHH', GPA + 0x8000, 16, 1, 1) + struct.pack('<QIHH', GPA + 0x9000, 512, 3, 2) + \
        struct.pack('<QIHH', GPA + 0xa000, 1, 2, 0)
    return store(0, desc) + store(0x8000, struct.pack('<IIQ', 0, 0, 0)) + store(0x1000, struct.pack('<HHH', 0, 1, 0))

V1, EVIDX, PACKED = 1 << 32, 1 << 29, 1 << 34
seeds = {
    'split-read.bin': init(V1 | EVIDX, False) + split_read() + cmd(0x0424, struct.pack('<HHI', 0, 0, 0)) + PROCESS
        + cmd(0x0417, struct.pack('<II', 0, 4) + bytes(4)) + status(0),
    'packed.bin': init(V1 | PACKED, True) + cmd(0x0424, struct.pack('<HHI', 0, 0, 0)) + PROCESS + queue(0x0422, 0, 0)
        + status(0),
    # the MMU on, the first 64 KiB mapped 1:1 (rings and the request), then
    # the request's data unmapped and served again: refused
    'mmu.bin': init(V1 | EVIDX, False, cmd(0x0430, bytes([1]) + bytes(7))
                    + cmd(0x0432, struct.pack('<IIQQQ', 0, 3, GPA, 0x10000, GPA)) + cmd(0x0434)) + split_read()
        + cmd(0x0424, struct.pack('<HHI', 0, 0, 0)) + PROCESS + cmd(0x0434)
        + cmd(0x0433, struct.pack('<IIQQ', 0, 0, GPA + 0x9000, 1)) + PROCESS + status(0),
    'hostile.bin': status(1) + cmd(0x0411, struct.pack('<Q', 1 << 63)) + status(0x1f) + cmd(0x0416, bytes(8))
        + cmd(0x0420, struct.pack('<HH4xQQQ', 9, 0, 8, 1, 2)) + cmd(0x0430, bytes([1]) + bytes(7), cut=30, room=5),
}
os.makedirs('fuzz/corpus/admin', exist_ok=True)
for name, data in seeds.items():
    with open('fuzz/corpus/admin/' + name, 'wb') as f:
        f.write(data)
