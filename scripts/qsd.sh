#!/bin/bash
# qsd.sh IMG SOCK [--queues=N] [--null=BYTES] [--read-only] [--no-lock]
#   qemu-storage-daemon (QEMU's libvhost-user back-end, from Debian's
#   qemu-utils) serving IMG, a raw file, as a vhost-user-blk export on SOCK:
#   the reference peer for vhu's interop tests and bench/blk-vs-qsd. Prints
#   the daemon's pid once the socket listens; stop it with kill PID.
#   --null=BYTES serves a null device of that size instead (reads give
#   zeroes, writes are dropped; IMG is not used). --no-lock: no image lock
#   (locking=off), so that a second daemon can serve the same image (the
#   destination of a migration).
set -euo pipefail
usage() { sed -n '2,10s/^# \{0,1\}//p' "$0" >&2; exit 2; }
[[ $# -ge 2 ]] || usage
img=$1 sock=$2
shift 2
queues=1 null="" writable=on lock=""
for a in "$@"; do
  case $a in
    --queues=*) queues=${a#*=} ;;
    --null=*) null=${a#*=} ;;
    --read-only) writable=off ;;
    --no-lock) lock=",locking=off" ;;
    *) echo "qsd.sh: $a: unknown option" >&2; usage ;;
  esac
done
command -v qemu-storage-daemon >/dev/null ||
  { echo "qsd.sh: qemu-storage-daemon not found (apt-get install qemu-utils)" >&2; exit 1; }
# a ',' inside a QEMU option value is written ',,'
q() { printf '%s' "${1//,/,,}"; }
if [[ -n $null ]]; then
  node="driver=null-co,node-name=disk,size=$null,read-zeroes=on"
else
  [[ -f $img ]] || { echo "qsd.sh: $img: no such file" >&2; exit 1; }
  node="driver=file,node-name=disk,filename=$(q "$(realpath "$img")"),aio=threads$lock"
fi
rm -f -- "$sock"    # a stale socket makes the export fail with "Address already in use"
pidfile=$(mktemp /tmp/vhu-qsd.XXXXXX)
trap 'rm -f "$pidfile"' EXIT
# --daemonize returns once the export listens, or with its error on stderr
timeout 30 qemu-storage-daemon --daemonize --pidfile "$pidfile" --blockdev "$node" \
  --export "type=vhost-user-blk,id=vhu,node-name=disk,addr.type=unix,addr.path=$(q "$sock"),writable=$writable,num-queues=$queues" >&2
pid=$(<"$pidfile")
[[ -S $sock ]] && kill -0 "$pid" 2>/dev/null || { echo "qsd.sh: qemu-storage-daemon did not come up" >&2; exit 1; }
echo "$pid"
