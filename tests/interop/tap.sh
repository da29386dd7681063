# Sourced by the interop tests: TAP results, a bounded wait for a socket, the
# scratch folder of a guest test, and the newer peers' programs.
# report NAME STATUS OUTPUT: "ok N - NAME" with the output's first line, or
# "not ok N - NAME" with its last lines as comments; sets fail=1 on failure.
n=0 fail=0
report() {
  n=$((n + 1))
  local first=${3%%$'\n'*}
  if [[ $2 == 0 ]]; then
    echo "ok $n - $1 ${first:0:150}"
  else
    fail=1
    echo "not ok $n - $1"
    sed 's/^/# /' <<< "$3" | tail -25
    # and on stderr, which meson shows in its summary (the TAP comments stay in the log)
    echo "not ok $n - $1: $(tail -c 1500 <<< "$3")" >&2
  fi
}
# wait_sock PATH: up to 10 s for a back-end to listen there
wait_sock() { for _ in $(seq 200); do [[ -S $1 ]] && return 0; sleep 0.05; done; return 1; }
# guest_workdir NAME [CLEANUP]: WORK, a scratch folder removed at exit (after
# the CLEANUP command, given unexpanded), with vhu guest's run folders in it
# (TMPDIR) and ASan told not to mind the link order of a preloaded library
guest_workdir() {
  WORK=$(mktemp -d "/tmp/vhu-$1.XXXXXX")
  trap "${2:+$2; }rm -rf \"\$WORK\"" EXIT
  export ASAN_OPTIONS=${ASAN_OPTIONS:-}:verify_asan_link_order=0
  export TMPDIR=$WORK/tmp
  mkdir -p "$TMPDIR"
}
# newer_peer ROOT: the bookworm-backports tree's QEMU (q10, its version q10v)
# and newest kernel (k612, its version v612)
newer_peer() {
  q10=$1/usr/bin/qemu-system-x86_64
  q10v=$("$q10" --version | sed -n '1s/.*version \([^ ]*\).*/\1/p')
  k612=$(ls "$1"/boot/vmlinuz-* | sort -V | tail -n 1)
  v612=${k612##*/vmlinuz-}
}
