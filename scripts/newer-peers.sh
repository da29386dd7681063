#!/bin/bash
# newer-peers.sh: QEMU 10.0 and Linux 6.12 from Debian's bookworm-backports,
# beside the system's QEMU 7.2 and Linux 6.1 and never replacing them: the
# .debs come through a private apt state (its own sources list, lists and
# archive folder, for the suite of the system's own Debian mirror), are
# unpacked with dpkg -x into a cache folder, and the kernel's modules get
# their modules.dep with depmod -b (the package has none). Cached: a second
# run prints the same folder at once. Prints the tree's root; in it
# usr/bin/qemu-system-x86_64 and boot/vmlinuz-VERSION (vhu guest --qemu and
# --kernel find the tree's firmware and modules themselves).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
vhu_install_debs kmod >&2
cache=${VHU_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vhu}/peers/bookworm-backports
root=$cache/root
if [[ -f $cache/.done ]]; then echo "$root"; exit 0; fi
rm -rf "$cache"
mkdir -p "$cache/apt/lists/partial" "$cache/apt/archives/partial" "$cache/debs"
# the mirror the system already uses for bookworm
mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)\/\{0,1\}$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
[[ -n $mirror ]] || mirror=$(awk '$1 == "deb" && $3 ~ /^bookworm/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
[[ -n $mirror ]] || { echo "newer-peers.sh: no bookworm mirror in the system's apt sources" >&2; exit 1; }
cat > "$cache/backports.sources" <<SRC
Types: deb
URIs: $mirror
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
apt=(-o "Dir::State::Lists=$cache/apt/lists" -o "Dir::Cache::Archives=$cache/apt/archives"
     -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts=/nonexistent
     -o "Dir::Etc::sourcelist=$cache/backports.sources" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
apt-get "${apt[@]}" update -qq >&2
# linux-image-amd64 from backports names the kernel package of the day
kernel=$(apt-cache "${apt[@]}" depends linux-image-amd64/bookworm-backports 2>/dev/null |
         sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1)
[[ -n $kernel ]] || { echo "newer-peers.sh: no linux-image in bookworm-backports" >&2; exit 1; }
(cd "$cache/debs" && apt-get "${apt[@]}" download -qq qemu-system-x86/bookworm-backports \
   qemu-system-common/bookworm-backports qemu-system-data/bookworm-backports "$kernel" >&2)
for d in "$cache"/debs/*.deb; do dpkg -x "$d" "$root"; done
rm -f "$cache"/debs/*.deb
for m in "$root"/lib/modules/*; do depmod -b "$root" "$(basename "$m")"; done
"$root/usr/bin/qemu-system-x86_64" --version | head -n 1 >&2
touch "$cache/.done"
echo "$root"
