#!/usr/bin/env bash
# The emulation poisons the whole TLS block of the library that holds the kernels before every
# block, as static shared memory (tests/simt/simt.h): that is only right while every
# thread-local variable of that library is a kernel's __shared__ variable, i.e. a function-local
# static (mangled _ZZ...) of kernels/cuda. Fails naming any other thread-local.
#   tls_layout.sh LIBRARY
set -euo pipefail
lib=$1
syms=$(readelf -sW "$lib" | awk '$4 == "TLS" {print $8}')
n=$(printf '%s\n' "$syms" | grep -c . || true)
bad=$(printf '%s\n' "$syms" | grep -v '^_ZZ' | grep . || true)
if [ -n "$bad" ]; then
    echo "FAIL: thread-locals in $lib that are not kernels' __shared__ variables:"
    printf '%s\n' "$bad" | c++filt
    exit 1
fi
echo "ok: $n thread-locals in $(basename "$lib"), all function-local statics of kernels:"
# (the listing reads all of its input: head would close the pipe early and, under pipefail,
# turn a passing check into a SIGPIPE exit)
printf '%s\n' "$syms" | c++filt | sed 's/(.*//' | sort | uniq -c | sort -rn | awk 'NR <= 5'
