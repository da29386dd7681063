#!/bin/bash
# `meson install --destdir` puts every file a user needs where it belongs:
# the programs, the guest's init, the library (shared and static), the
# headers, the pkg-config file, the man pages and the QEMU back-end
# descriptor, which must be valid JSON naming the installed vhu-blk. A
# program built against the installed library and headers with pkg-config
# must link and run. TAP output.
#   usage: install.sh BUILD_DIR
set -uo pipefail
B=$1
D=$(mktemp -d /tmp/vhu-install.XXXXXX)
trap 'rm -rf "$D"' EXIT
n=0 fail=0
t() { n=$((n + 1)); if out=$(eval "$2" 2>&1); then echo "ok $n - $1"; else fail=1; echo "not ok $n - $1"; sed 's/^/# /' <<< "$out" | tail -10; fi; }
echo "1..7"
t "meson install --destdir" "meson install -C '$B' --destdir '$D' --no-rebuild --quiet"
option() { meson introspect "$B" --buildoptions | python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]==sys.argv[1]][0])' "$1"; }
prefix=$(option prefix)
# a library built with sanitizers needs them in the program too
sanitize=$(option b_sanitize)
[[ $sanitize == none ]] && sanitize_flags="" || sanitize_flags="-fsanitize=$sanitize"
R=$D$prefix
t "programs, guest init, libraries, headers, pkg-config, man pages" '
  for f in bin/vhu bin/vhu-blk bin/vhu-mgmt include/vhu/admin_driver.h share/man/man1/vhu-mgmt.1 libexec/vhu/vhu-guest-init include/vhu/backend.h include/vhu/frontend.h \
           share/man/man1/vhu.1 share/man/man1/vhu-blk.1 share/qemu/vhost-user/50-vhu-blk.json; do
    [[ -e $R/$f ]] || { echo "missing $f"; exit 1; }
  done
  for f in libvhu.so libvhu.a vhu.pc; do [[ -n $(find "$R" -name $f) ]] || { echo "no $f"; exit 1; }; done'
t "the descriptor is valid JSON of type block naming the installed vhu-blk" "
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d[\"type\"]==\"block\" and d[\"binary\"]==sys.argv[2], d; assert isinstance(d[\"description\"], str)' \
    '$R/share/qemu/vhost-user/50-vhu-blk.json' '$prefix/bin/vhu-blk'"
pc=$(dirname "$(find "$R" -name vhu.pc | head -1)")
libdir=$(dirname "$(find "$R" -name libvhu.so | head -1)")
# the installed programs load the installed libvhu, not the build tree's (meson test points there)
export LD_LIBRARY_PATH=$libdir
t "the installed vhu-blk prints its capabilities" "'$R/bin/vhu-blk' --print-capabilities | python3 -c 'import json,sys; assert json.load(sys.stdin)[\"type\"]==\"block\"'"
t "the guest init is a static program" "file -L '$R/libexec/vhu/vhu-guest-init' | grep -q 'statically linked'"
cat > "$D/use.c" <<'C'
#include <stdio.h>
#include <vhu/vhost_user.h>
int main(void) { return vhu_user_protocol_feature_name(0) ? 0 : 1; }
C
t "a program builds against the installed headers and libvhu (pkg-config)" "
  cc $sanitize_flags '$D/use.c' -o '$D/use' \$(PKG_CONFIG_SYSROOT_DIR='$D' PKG_CONFIG_PATH='$pc' pkg-config --cflags --libs vhu) &&
  '$D/use'"
# the installed programs on their own: vhu-blk serves, vhu guest finds its
# init in ../libexec/vhu and boots a guest on it
truncate -s 16M "$D/disk.img"
"$R/bin/vhu-blk" --socket-path="$D/blk.sock" --blk-file="$D/disk.img" 2> "$D/blk.log" &
blk=$!
for _ in $(seq 100); do [[ -S $D/blk.sock ]] && break; sleep 0.05; done
t "the installed vhu guest boots a guest on the installed vhu-blk" \
  "env -u VHU_GUEST_INIT '$R/bin/vhu' guest '$D/blk.sock' --image='$D/disk.img' --size=4M --expect=host_check=ok"
kill $blk 2>/dev/null; wait $blk 2>/dev/null
exit $fail
