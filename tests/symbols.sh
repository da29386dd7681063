#!/bin/bash
# libvhu.so exports only its API: every dynamic symbol it defines starts
# with vhu_ (the rest is hidden, vhu/visibility.h), and no call inside the
# library goes to one of its own functions through the PLT (they are bound
# at link time, so the hot path makes direct calls). TAP output.
#   usage: symbols.sh LIBVHU_SO
LIB=$1
n=0 fail=0
t() { n=$((n + 1)); if out=$(eval "$2" 2>&1); then echo "ok $n - $1"; else fail=1; echo "not ok $n - $1"; sed 's/^/# /' <<< "$out" | head -20; fi; }
echo "1..3"
t "it exports the API" "nm -D --defined-only '$LIB' | grep -q ' T vhu_dev_vq_pop$'"
t "every exported symbol starts with vhu_" "! nm -D --defined-only '$LIB' | awk '{print \$3}' | grep -v '^vhu_'"
t "no call to a vhu_ function through the PLT" "! objdump -d '$LIB' | grep -E 'call.*<vhu_[a-z0-9_]*@plt>|bl[[:space:]].*<vhu_[a-z0-9_]*@plt>'"
exit $fail
