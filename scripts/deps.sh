#!/bin/bash
# Install what vhu needs to build and test, from Debian 12 packages, when missing.
# Sourced by the README's two commands; safe to run again.
set -euo pipefail

VHU_DEBS=(build-essential meson ninja-build pkg-config python3 libcmocka-dev liburing-dev gnuplot-nox valgrind)
# Real peers for the interop tests and the demo: QEMU (and qemu-storage-daemon
# in qemu-utils), the guest's kernel and busybox for `vhu guest`, the
# decompressors for the kernel's payload and modules, fio for its fio workload,
# and libvirt's daemon for the libvirt test
VHU_PEER_DEBS=(qemu-system-x86 qemu-utils linux-image-amd64 busybox-static xz-utils zstd fio file procps
               libvirt-daemon-system libvirt-clients)

vhu_missing_debs() {
  local p missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  echo "${missing[@]:-}"
}

vhu_install_debs() {
  local missing
  missing=$(vhu_missing_debs "$@")
  [[ -z $missing ]] && return 0
  if [[ $(id -u) != 0 ]]; then
    echo "vhu: missing Debian packages: $missing (run as root, or install them)" >&2
    return 1
  fi
  echo "vhu: installing $missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >&2
}
