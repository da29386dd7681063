#!/usr/bin/env python3
"""Seed inputs for fuzz_backend: whole sessions in its encoding (request,
flags, size, payload, fd byte). The input is also the guest memory image,
so a ring with one descriptor chain is placed at 4 KiB, and the region
table maps guest address 0 / user address UA to the memfd."""
import os, struct, sys

UA = 0x10000000
NEED_REPLY = 1 | 8          # version 1, need_reply

def msg(req, payload=b"", fds=0, flags=NEED_REPLY):
    return struct.pack("<BBH", req, flags, len(payload)) + payload + bytes([fds])

def state(i, n): return struct.pack("<II", i, n)

def session(packed, inband):
    feats = (1 << 32) | (1 << 29) | (1 << 28) | (1 << 30) | ((1 << 34) if packed else 0)
    pf = 0x1e229 if inband else 0x1a229     # MQ REPLY_ACK BACKEND_REQ CONFIG RESET MEM_SLOTS STATUS (+INBAND)
    m = b""
    m += msg(1)                                       # GET_FEATURES
    m += msg(15)                                      # GET_PROTOCOL_FEATURES
    m += msg(16, struct.pack("<Q", pf))
    m += msg(17)                                      # GET_QUEUE_NUM
    m += msg(21, fds=1 | 4)                           # SET_BACKEND_REQ_FD (an eventfd stands in)
    m += msg(3)                                       # SET_OWNER
    m += msg(24, struct.pack("<III", 0, 8, 0) + bytes(8))   # GET_CONFIG
    m += msg(2, struct.pack("<Q", feats))             # SET_FEATURES
    region = struct.pack("<QQQQ", 0, 1 << 20, UA, 0)
    m += msg(5, struct.pack("<II", 1, 0) + region, fds=1)    # SET_MEM_TABLE, one memfd
    m += msg(8, state(0, 16))
    m += msg(10, state(0, (1 << 15 | 1 << 31) if packed else 0))
    addr = struct.pack("<IIQQQQ", 0, 0, UA + 0x1000, UA + 0x1400, UA + 0x1200, 0)
    m += msg(9, addr)                                 # SET_VRING_ADDR desc/used/avail
    m += msg(13, struct.pack("<Q", 0), fds=1 | 4)     # SET_VRING_CALL eventfd
    if inband:
        m += msg(35, state(0, 0))                     # VRING_KICK
    else:
        m += msg(12, struct.pack("<Q", 0), fds=1 | 4) # SET_VRING_KICK eventfd
    m += msg(18, state(0, 1))                         # SET_VRING_ENABLE
    m += msg(37, struct.pack("<Q", 0) + struct.pack("<QQQQ", 1 << 24, 1 << 16, UA + (1 << 24), 0), fds=1)
    m += msg(38, struct.pack("<Q", 0) + struct.pack("<QQQQ", 1 << 24, 1 << 16, UA + (1 << 24), 0))
    m += msg(11, state(0, 0))                         # GET_VRING_BASE
    m += msg(39, struct.pack("<Q", 15))               # SET_STATUS
    m += msg(40)                                      # GET_STATUS
    m += msg(34)                                      # RESET_DEVICE
    img = bytearray(m.ljust(0x1000, b"\0"))
    ring = bytearray(0x800)
    buf = 0x2000
    if packed:   # one available descriptor: readable 16 bytes, id 0, AVAIL
        struct.pack_into("<QIHH", ring, 0, buf, 16, 0, 1 << 7)
    else:        # desc 0: buf 16 bytes, NEXT -> 1; desc 1: buf+16, 64 bytes, WRITE
        struct.pack_into("<QIHH", ring, 0, buf, 16, 1, 1)
        struct.pack_into("<QIHH", ring, 16, buf + 16, 64, 2, 0)
        struct.pack_into("<HHH", ring, 0x200, 0, 1, 0)     # avail: flags, idx 1, ring[0] = 0
    return bytes(img + ring + bytes(0x1000 - len(ring)) + b"request data" * 8)

out = sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/backend"
os.makedirs(out, exist_ok=True)
for name, packed, inband in [("split", 0, 0), ("packed", 1, 0), ("split-inband", 0, 1), ("packed-inband", 1, 1)]:
    with open(os.path.join(out, f"session-{name}.bin"), "wb") as f:
        f.write(session(packed, inband))
