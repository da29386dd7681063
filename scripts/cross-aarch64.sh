#!/bin/bash
# Build vhu for aarch64 with Debian's cross compiler and run its ring and
# protocol tests under qemu-user (qemu-aarch64): the library must build and
# behave on Arm, where vhost-user is widely deployed. The arm64 cmocka and
# liburing come from Debian through a private apt state in
# build-aarch64-sysroot/ (the machine's own dpkg architectures are left
# alone) and are unpacked there with dpkg -x.
#   usage: scripts/cross-aarch64.sh   (then: meson test -C build-aarch64 ...)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
vhu_install_debs gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
S=$PWD/build-aarch64-sysroot
if [[ ! -f $S/.done ]]; then
  rm -rf "$S"
  mkdir -p "$S/apt/lists/partial" "$S/apt/archives/partial" "$S/debs"
  apt=(-o "Dir::State::Lists=$S/apt/lists" -o "Dir::Cache::Archives=$S/apt/archives" -o Dir::State::Status=/dev/null
       -o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
  apt-get "${apt[@]}" update -qq
  (cd "$S/debs" && apt-get "${apt[@]}" download -qq libcmocka0:arm64 libcmocka-dev:arm64 liburing2:arm64 liburing-dev:arm64)
  for d in "$S"/debs/*.deb; do dpkg -x "$d" "$S/root"; done
  touch "$S/.done"
fi
lib=$S/root/usr/lib/aarch64-linux-gnu
cat > "$S/paths.ini" <<INI
[binaries]
exe_wrapper = ['qemu-aarch64', '-L', '/usr/aarch64-linux-gnu', '-E', 'LD_LIBRARY_PATH=$lib']

[properties]
sys_root = '$S/root'
pkg_config_libdir = ['$lib/pkgconfig']
INI
if [[ ! -f build-aarch64/build.ninja ]]; then
  meson setup build-aarch64 --cross-file cross/aarch64-linux-gnu.ini --cross-file "$S/paths.ini" \
    --buildtype=debugoptimized >/dev/null
fi
ninja -C build-aarch64
