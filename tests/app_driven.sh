#!/bin/bash
# The application-driven execution model (VHU_EXEC_APP), through
# examples/ramdisk.c: its own epoll loop calls vhu_backend_dispatch, and
# vhu starts no thread. vhu verify passes over split and packed rings, two
# queues, eventfd, in-band and polling notifications; the process has one
# thread while a two-queue bench runs; a real Linux guest uses it
# (vhu guest); its fds are back to their idle count after the sessions; it
# exits 0 on SIGTERM. TAP output.
#   usage: app_driven.sh VHU_RAMDISK VHU
set -uo pipefail
RD=$1 VHU=$2
WORK=$(mktemp -d /tmp/vhu-app.XXXXXX)
trap 'kill $pid 2>/dev/null; rm -rf "$WORK"' EXIT
n=0 fail=0
t() { n=$((n + 1)); if out=$(eval "$2" 2>&1); then echo "ok $n - $1"; else fail=1; echo "not ok $n - $1"; sed 's/^/# /' <<< "$out" | tail -10; fi; }
echo "1..9"
S=$WORK/rd.sock
"$RD" "$S" 64 2 2> "$WORK/rd.log" &
pid=$!
for _ in $(seq 100); do [[ -S $S ]] && break; sleep 0.05; done
fds() { ls /proc/$pid/fd | wc -l; }
threads() { awk '/^Threads:/ { print $2 }' /proc/$pid/status; }
idle_fds=$(fds)
t "one thread before any front-end" "[[ \$(threads) == 1 ]]"
for a in "--ring=split" "--ring=packed --queues=2" "--ring=split --notify=inband" "--ring=packed --notify=poll"; do
  t "vhu verify $a" "'$VHU' verify '$S' --size=16M $a | grep -q 'verify ok'"
done
"$VHU" bench "$S" --runtime=2 --queues=2 --iodepth=32 --json > "$WORK/bench.json" 2>&1 &
b=$!
sleep 1
during=$(threads)
wait $b
t "one thread while a two-queue bench runs (it had $during)" "[[ $during == 1 ]] && python3 -c 'import json; d=json.load(open(\"$WORK/bench.json\")); assert d[\"ios\"] > 0 and not d[\"errors\"]'"
t "a Linux guest on it: packed ring, two queues" \
  "'$VHU' guest '$S' --packed --queues=2 --expect=packed=1,queues=2,workers=2"
sleep 0.2
t "its fds back to the idle count after the sessions ($idle_fds)" "[[ \$(fds) == $idle_fds ]] || { ls -l /proc/$pid/fd; false; }"
kill -TERM $pid
wait $pid; rc=$?
t "exits 0 on SIGTERM" "[[ $rc == 0 ]] || { cat '$WORK/rd.log'; false; }"
exit $fail
