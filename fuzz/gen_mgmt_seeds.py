#!/usr/bin/env python3
# Seeds for fuzz_mgmt: members created on mem: and null:, listed, shown,
# initialised part way, destroyed, and the list commands (see fuzz_mgmt.c
# for the step encoding). Run from the repository root.
import os, struct

OPS = [0x0000, 0x0001, 0x0400, 0x0401, 0x0402, 0x0403, 0x0404, 0x0405, 0x0410, 0x0411, 0x0412, 0x0413, 0x0414,
       0x0415, 0x0416, 0x0417, 0x0420, 0x0421, 0x0422, 0x0424, 0x0425, 0x0426, 0x0430, 0x0431, 0x0432, 0x0433,
       0x0434, 0x0423, 0x7fff]

def cmd(op, member=0, data=b'', room=200, group=0):
    return bytes([OPS.index(op), group, member, 1, room, len(data)]) + data

def create(backing=b'mem:', sectors=64, queues=1):
    return cmd(0x0401, data=struct.pack('<HHHHIIQ', 2, queues, 16, 0, 0, 0, sectors) + backing.ljust(64, b'\0'))

def status(m, s): return cmd(0x0413, m, bytes([s]) + bytes(7))

seeds = {
    'create_destroy': create() + cmd(0x0404, 1) + cmd(0x0403, data=bytes(8)) + cmd(0x0402, 1) + cmd(0x0402, 1),
    'two_members': create() + create(b'null:', 4096, 2) + cmd(0x0403, data=bytes(8)) + cmd(0x0400) +
                   cmd(0x0405, data=bytes(8)) + cmd(0x0402, 2) + cmd(0x0404, 1),
    'init_member': create() + status(1, 1) + status(1, 3) + cmd(0x0410, 1) +
                   cmd(0x0411, 1, struct.pack('<Q', 1 << 32)) + status(1, 0xb) + cmd(0x0414, 1) +
                   cmd(0x0416, 1, struct.pack('<II', 0, 8)) + cmd(0x0430, 1, bytes([1]) + bytes(7)) +
                   cmd(0x0432, 1, struct.pack('<IIQQQ', 0, 3, 0x1000, 0x1000, 0x1000)) + cmd(0x0434, 1) +
                   cmd(0x0420, 1, struct.pack('<HH4xQQQ', 0, 16, 0x1000, 0x2000, 0x3000)) +
                   cmd(0x0422, 1, struct.pack('<HB5x', 0, 1)) + status(1, 0),
    'lists': cmd(0x0000, group=1) + cmd(0x0000) + cmd(0x0001, data=struct.pack('<QQ', 3, 0)) + cmd(0x0400) +
             cmd(0x0001, data=b'\xff' * 8 * 17) + cmd(0x0400),
    'full': b''.join(create() for _ in range(7)) + cmd(0x0403, data=bytes(8), room=9),
}
os.makedirs('fuzz/corpus/mgmt', exist_ok=True)
for name, data in seeds.items():
    with open(f'fuzz/corpus/mgmt/{name}', 'wb') as f:
        f.write(data)
