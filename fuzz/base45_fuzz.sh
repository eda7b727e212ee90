#!/bin/sh
# Build fuzz/base45_fuzz.c (vaxqr/_base45.c under libFuzzer, ASan and UBSan) and run it.
#
#   apt-get install -y clang libclang-rt-dev     # Debian's clang and its compiler-rt
#   fuzz/base45_fuzz.sh [libFuzzer options...]   # e.g. -max_total_time=900 -jobs=1
#
# The binary goes to $TMPDIR/vaxqr-base45-fuzz/base45_fuzz; the corpus starts from
# tests/vectors/base45-fuzz/ (the regression inputs tests/test_codec.py replays) and grows
# in $TMPDIR/vaxqr-base45-fuzz/corpus; crash files go to $TMPDIR/vaxqr-base45-fuzz/.
set -eu
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
CC=${CC:-clang}
OUT=${TMPDIR:-/tmp}/vaxqr-base45-fuzz
mkdir -p "$OUT/corpus"
INC=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
LIBDIR=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
VER=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("LDVERSION"))')
"$CC" -g -O1 -fno-omit-frame-pointer -Wall -Wextra \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I"$INC" fuzz/base45_fuzz.c -L"$LIBDIR" -Wl,-rpath,"$LIBDIR" -lpython"$VER" \
    -o "$OUT/base45_fuzz"
# LeakSanitizer finds a leaked object (every object is its own malloc block); the harness
# also checks reference counts around every call
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
exec "$OUT/base45_fuzz" -artifact_prefix="$OUT/" -max_len=20000 "$@" \
    "$OUT/corpus" tests/vectors/base45-fuzz
