#!/usr/bin/env bash
# Packs the shared test data the gpu end-to-end tests need into gpu_shared/ inside the checkout,
# because the GPU machine receives only the working tree (not ../shared):
#
#   gpu_shared/golden/models/*        Hugging Face golden models (tests/gpu/test_cuda_golden.c)
#   gpu_shared/models/stories260K/*   stories260K.gguf + README.md (tests/gpu/test_cuda_stories.c)
#
# gpu_shared/ ignores itself (its own .gitignore holds "*"), so it is never committed and the
# device tool does not send it by default: name it in the tool's carry list, e.g.
#   run(command="bash tests/gpu/run.sh", carry=["gpu_shared"])
# tests/gpu/run.sh then uses it as RD_SHARED_DIR when present. The carry limit is 64 MiB in
# all; this script prints the size and refuses to go past RD_PACK_MAX_MB (default 48, leaving
# room for other carried paths).
#
#   bash tests/gpu/pack_shared.sh          # source: $RD_SHARED_DIR, else <repo>/../shared
#
# CTest also sees this file (tests/<label>/*.sh); run inside CTest it skips (exit 77).
set -euo pipefail

if [ -n "${RD_BIN_DIR:-}" ]; then
    echo "SKIP: tests/gpu/pack_shared.sh prepares data for the GPU machine; not a test"
    exit 77
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SRC=${RD_SHARED_DIR:-$ROOT/../shared}
DST=$ROOT/gpu_shared
MAX_MB=${RD_PACK_MAX_MB:-48}

if [ ! -d "$SRC/golden/models" ] || [ ! -d "$SRC/models/stories260K" ]; then
    echo "pack_shared: $SRC lacks golden/models or models/stories260K (set RD_SHARED_DIR)" >&2
    exit 1
fi
if [ "$(cd "$SRC" && pwd)" = "$DST" ]; then
    echo "pack_shared: source and destination are both $DST" >&2
    exit 1
fi

# a fresh copy (the sources are read-only, so make the old copy writable before removing it)
if [ -d "$DST" ]; then
    chmod -R u+w "$DST"
    rm -rf "$DST"
fi
mkdir -p "$DST/golden" "$DST/models/stories260K"
printf '*\n' >"$DST/.gitignore"
cp -RL "$SRC/golden/models" "$DST/golden/models"
cp -L "$SRC/models/stories260K/stories260K.gguf" "$SRC/models/stories260K/README.md" \
    "$DST/models/stories260K/"
[ -f "$SRC/golden/README.md" ] && cp -L "$SRC/golden/README.md" "$DST/golden/"
chmod -R u+w "$DST"

kb=$(du -sk "$DST" | cut -f1)
mb=$(((kb + 1023) / 1024))
echo "pack_shared: $DST holds $(find "$DST" -type f | wc -l) files, ${mb} MiB (from $SRC)"
du -sh "$DST/golden/models" "$DST/models/stories260K"
if [ "$mb" -gt "$MAX_MB" ]; then
    echo "pack_shared: ${mb} MiB is over RD_PACK_MAX_MB=${MAX_MB} (the device tool carries 64 MiB)" >&2
    exit 1
fi
if command -v git >/dev/null 2>&1 && git -C "$ROOT" rev-parse >/dev/null 2>&1; then
    if [ -n "$(git -C "$ROOT" status --porcelain -- gpu_shared 2>/dev/null)" ]; then
        echo "pack_shared: warning: git does not ignore gpu_shared/" >&2
    fi
fi
echo "pack_shared: carry it to the GPU machine with carry=[\"gpu_shared\"]"
