#!/usr/bin/env bash
# ropedist-tokenize end to end: encode with and without --special, --decode back to the exact
# input bytes, a .gguf tokenizer, and clean failures (bad file, invalid UTF-8, bad id list).
# The id values come from ../shared/golden/tokenizers/*/expected.json (Hugging Face).
set -u
BIN="${RD_BIN_DIR:-.}/ropedist-tokenize"
SHARED="${RD_SHARED_DIR:-../shared}"
if [ ! -d "$SHARED/golden" ]; then
  echo "SKIP: shared test data not found at $SHARED (set RD_SHARED_DIR)"
  exit 77
fi
if [ ! -x "$BIN" ]; then
  echo "FAIL: $BIN not built"
  exit 1
fi
T="$SHARED/golden/tokenizers"
fails=0
check() { # name, got, want
  if [ "$2" == "$3" ]; then echo "ok   $1"; else echo "FAIL $1: got [$2] want [$3]"; fails=$((fails + 1)); fi
}

got=$(printf 'Hello world' | "$BIN" --tokenizer "$T/bytelevel_bpe/tokenizer.json")
check "bytelevel encode" "$got" "[41, 70, 396, 80, 285, 265, 461]"
got=$(printf 'Hello world' | "$BIN" --tokenizer "$T/bytelevel_bpe/tokenizer.json" --special)
check "bytelevel --special" "$got" "[0, 41, 70, 396, 80, 285, 265, 461]"
got=$(printf '' | "$BIN" --tokenizer "$T/sentencepiece_bpe/tokenizer.json" --special)
check "sentencepiece empty --special" "$got" "[1]"
got=$(printf '[0, 41, 70, 396, 80, 285, 265, 461]' | "$BIN" --tokenizer "$T/bytelevel_bpe/tokenizer.json" --decode)
check "bytelevel --decode" "$got" "<|begin_of_text|>Hello world"

# exact byte round trip, trailing newlines and multibyte text included
text=$'tabs\tand\nnewlines \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80\n\n'
for tk in "$T/bytelevel_bpe/tokenizer.json" "$T/sentencepiece_bpe/tokenizer.json" \
          "$SHARED/models/stories260K/stories260K.gguf"; do
  ids=$(printf '%s' "$text" | "$BIN" --tokenizer "$tk")
  back=$(printf '%s' "$ids" | "$BIN" --tokenizer "$tk" --decode | od -An -tx1)
  want=$(printf '%s' "$text" | od -An -tx1)
  check "round trip $(basename "$(dirname "$tk")")/$(basename "$tk")" "$back" "$want"
done
got=$(printf 'Once upon a time' | "$BIN" --tokenizer "$SHARED/models/stories260K/stories260K.gguf" --special)
check "gguf --special" "$got" "[1, 403, 407, 261, 378]"

# failures: exit status non-zero and a message on stderr
printf 'x' | "$BIN" --tokenizer /nonexistent.json > /dev/null 2>&1; check "missing file fails" "$?" "1"
printf '\xff\xfe' | "$BIN" --tokenizer "$T/bytelevel_bpe/tokenizer.json" > /dev/null 2>&1
check "invalid UTF-8 fails" "$?" "1"
printf '[1, "x"]' | "$BIN" --tokenizer "$T/bytelevel_bpe/tokenizer.json" --decode > /dev/null 2>&1
check "bad id list fails" "$?" "1"
printf '[99999999]' | "$BIN" --tokenizer "$T/bytelevel_bpe/tokenizer.json" --decode > /dev/null 2>&1
check "out-of-vocab id fails" "$?" "1"
"$BIN" > /dev/null 2>&1; check "no --tokenizer fails" "$?" "2"

if [ $fails -ne 0 ]; then echo "tokenize_cli: $fails failed"; exit 1; fi
echo "tokenize_cli: all passed"
