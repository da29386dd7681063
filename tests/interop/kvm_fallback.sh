#!/bin/bash
# vhu guest on a host whose KVM passes the vCPU probe but cannot run the
# guest (nested hosts do this: a KVM of another kind under ours stalls the
# kernel at boot): a guest whose init has not started 15 s into a KVM run
# vhu guest chose itself is run again under TCG, and this host boot is
# remembered. Shown here with a QEMU that stalls whenever it is given KVM
# (the real QEMU under TCG otherwise), for one guest and for a live
# migration, whose two QEMUs must start again together (regression: the
# migration waited for its workload until --timeout). Skipped where the
# probe finds no KVM, so vhu guest never tries it. TAP output.
#   usage: kvm_fallback.sh VHU VHU_BLK
set -uo pipefail
VHU=$1 BLK=$2
source "$(dirname "$0")/tap.sh"
pids=()
guest_workdir kvm-fallback 'kill "${pids[@]}" 2>/dev/null'
echo "1..2"
# its own cache, so the marker it leaves touches no other test
export VHU_CACHE_DIR=$WORK/cache
cat > "$WORK/qemu" <<'EOF'
#!/bin/bash
# a KVM that runs nothing: the process lives, the guest never starts
for a; do [[ $a == kvm ]] && exec sleep 600; done
exec qemu-system-x86_64 "$@"
EOF
chmod +x "$WORK/qemu"
truncate -s 256M "$WORK/disk.img"
for side in a b; do
  "$BLK" --socket-path="$WORK/$side.sock" --blk-file="$WORK/disk.img" 2>> "$WORK/blk.log" &
  pids+=($!)
  wait_sock "$WORK/$side.sock"
done

# fell_back WHAT OUTPUT: passed under TCG after a KVM stall, the host boot
# remembered; or skipped, when vhu guest went to TCG without trying KVM
fell_back() {
  local what=$1 out=$2 rc=$3
  if [[ $rc == 0 && $out == *accel=tcg* && $out != *"did not start under KVM"* ]]; then
    report "$what # SKIP no KVM here passes the probe, so vhu guest does not try it" 0 ""
    return
  fi
  [[ $rc == 0 && $out == *"did not start under KVM within 15 s; again under TCG"* && $out == *accel=tcg* ]] &&
    ls "$VHU_CACHE_DIR"/kvm-hangs-* >/dev/null 2>&1
  report "$what" $? "$out"
  rm -f "$VHU_CACHE_DIR"/kvm-hangs-*   # the next case stalls afresh
}

out=$("$VHU" guest "$WORK/a.sock" --qemu="$WORK/qemu" --image="$WORK/disk.img" --timeout=90 2>&1)
fell_back "a guest that KVM stalls runs again under TCG" "$out" $?
out=$("$VHU" guest "$WORK/a.sock" --migrate-to="$WORK/b.sock" --qemu="$WORK/qemu" --rounds=40 --size=16M \
      --migrate-hold=0 --image="$WORK/disk.img" --timeout=90 2>&1)
rc=$?
[[ $rc == 0 && $out != *migrate=completed* ]] && rc=1
fell_back "a migration whose source KVM stalls starts both QEMUs again under TCG and migrates" "$out" $rc
exit $fail
