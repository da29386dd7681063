# Sourced by the interop tests: TAP results and a bounded wait for a socket.
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
