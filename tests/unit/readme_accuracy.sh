#!/usr/bin/env bash
# The README says what a user will see: every unit test that reports itself skipped without
# ../shared is named where the README lists them (each unit test program is run here with
# RD_SHARED_DIR pointing nowhere), every test it names exists, and its first run example
# samples (greedy decoding, the default, loops on the small embedded model).
set -u
SRC="${RD_SOURCE_DIR:-..}"
BIN="${RD_BIN_DIR:-.}"
README="$SRC/README.md"
fail=0
# the paragraph on ../shared, from "Golden tests read" to the next blank line
para=$(awk '/^Golden tests read the outside oracle/{on=1} on&&/^$/{exit} on{print}' "$README" |
       tr '\n' ' ')
if [ -z "$para" ]; then
    echo "FAIL: README has no paragraph on tests that need ../shared"
    exit 1
fi
named=$(grep -o '`\(test\|unit\)_[a-z0-9_]*`' <<<"$para" | tr -d '`' | sort -u)
empty=$(mktemp -d)
skipped=""
for src in "$SRC"/tests/unit/test_*.c "$SRC"/tests/unit/*.sh; do
    base=$(basename "$src")
    case "$base" in
    readme_accuracy.sh) continue ;;
    *.c) name="${base%.c}"; cmd=("$BIN/tests/$name") ;;
    *.sh) name="unit_${base%.sh}"; cmd=(bash "$src") ;;
    esac
    (cd "$BIN/tests" 2>/dev/null || cd "$BIN"; RD_SHARED_DIR="$empty/none" "${cmd[@]}" >/dev/null 2>&1)
    rc=$?
    if [ "$rc" -eq 77 ]; then
        skipped="$skipped $name"
        if ! grep -qx "$name" <<<"$named"; then
            echo "FAIL: $name skips without ../shared but the README does not say so"
            fail=1
        fi
    fi
done
rmdir "$empty"
for n in $named; do
    if [ ! -e "$BIN/tests/$n" ] && [ ! -e "$SRC/tests/unit/${n#unit_}.sh" ]; then
        echo "FAIL: the README names $n, which is not a test"
        fail=1
    fi
done
echo "skip without ../shared:$skipped"
# the first example of "## Running" samples
example=$(awk '/^## Running/{on=1} on&&/^mpirun/{p=1} p{print} p&&!/\\$/{exit}' "$README")
if ! grep -q -- '--temperature' <<<"$example"; then
    echo "FAIL: the README's first run example is greedy:"
    echo "$example"
    fail=1
fi
[ "$fail" -eq 0 ] && echo "README accuracy: ok"
exit "$fail"
