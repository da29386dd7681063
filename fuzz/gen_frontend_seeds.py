#!/usr/bin/env python3
"""Seed input for fuzz_frontend: the replies a well-behaved back-end sends
to vhu_fe_connect, GET_CONFIG, GET_STATUS and vhu_fe_start/stop, in order."""
import os, struct, sys

REPLY = 1 | 4
def rep(req, payload): return struct.pack("<III", req, REPLY, len(payload)) + payload
def u64(v): return struct.pack("<Q", v)
ACK = u64(0)
feats = (1 << 32) | (1 << 29) | (1 << 28) | (1 << 30)
pf = (1 << 0) | (1 << 3) | (1 << 9) | (1 << 16)     # MQ REPLY_ACK CONFIG STATUS
s = b""
# SET_PROTOCOL_FEATURES goes before REPLY_ACK is agreed: no reply to it
s += rep(1, u64(feats)) + rep(15, u64(pf)) + rep(17, u64(1)) + rep(3, ACK)
s += rep(24, struct.pack("<III", 0, 64, 0) + bytes(64))     # GET_CONFIG
s += rep(40, u64(0))                                        # GET_STATUS
s += rep(2, ACK) + rep(5, ACK)                              # SET_FEATURES, SET_MEM_TABLE
s += rep(8, ACK) + rep(10, ACK) + rep(9, ACK) + rep(13, ACK) + rep(12, ACK) + rep(18, ACK)
s += rep(39, ACK)                                           # SET_STATUS
s += rep(11, struct.pack("<II", 0, 0))                      # GET_VRING_BASE
out = sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/frontend"
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "good-backend.bin"), "wb").write(s)
