#!/usr/bin/env bash
# Fills gpu_pack/ (inside the checkout, ignored by git) with everything the GPU machine may lack,
# because it receives only the working tree plus the paths a call names to carry (64 MiB in all)
# and reaches no package registry:
#
#   gpu_pack/shared/golden/models/*      Hugging Face golden models (test_cuda_golden)
#   gpu_pack/shared/models/stories260K/  stories260K.gguf + README.md (test_cuda_stories, graphs)
#   gpu_pack/debs/*.deb                  the libraries the build needs beyond what the machine is
#                                        known to have (tests/gpu/deps.txt): unpacked there with
#                                        dpkg -x into a private prefix only when missing
#   gpu_pack/prebuilt/*.xz               with --prebuilt: test_cuda_ops, the benchmarks, ropedist
#                                        and ropedist-convert built here for sm_90, and
#                                        libropedist_core.so, which holds their device code once,
#                                        so the most valuable steps can start before anything is
#                                        built there
#   gpu_pack/MANIFEST                    what is in it, from which source, and its size
#
#   bash tests/gpu/pack.sh [--prebuilt]
#   then: run(command="bash tests/gpu/run.sh a", carry=["gpu_pack"])
#
# Sources: RD_SHARED_DIR (default <repo>/../shared) and apt-get download (this machine's
# Debian archive). Refuses to make more than RD_PACK_MAX_MB (default 60) MiB. CTest sees this
# file (tests/gpu/*.sh) and skips it (exit 77) when run inside CTest.
set -euo pipefail

if [ -n "${RD_BIN_DIR:-}" ]; then
    echo "SKIP: tests/gpu/pack.sh prepares the GPU machine's bundle; not a test"
    exit 77
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SRC=${RD_SHARED_DIR:-$ROOT/../shared}
DST=$ROOT/gpu_pack
MAX_MB=${RD_PACK_MAX_MB:-60}
prebuilt=0
[ "${1:-}" = "--prebuilt" ] && prebuilt=1

if [ ! -d "$SRC/golden/models" ] || [ ! -d "$SRC/models/stories260K" ]; then
    echo "pack: $SRC lacks golden/models or models/stories260K (set RD_SHARED_DIR)" >&2
    exit 1
fi

if [ -d "$DST" ]; then
    chmod -R u+w "$DST"
    rm -rf "$DST"
fi
mkdir -p "$DST/shared/golden" "$DST/shared/models/stories260K" "$DST/debs"
printf '*\n' >"$DST/.gitignore" # the folder ignores itself
{
    echo "# gpu_pack, made $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
} >"$DST/MANIFEST"

# ---- shared test data (read-only sources: copy, then make the copy writable) ----
cp -RL "$SRC/golden/models" "$DST/shared/golden/models"
[ -f "$SRC/golden/README.md" ] && cp -L "$SRC/golden/README.md" "$DST/shared/golden/"
cp -L "$SRC/models/stories260K/stories260K.gguf" "$SRC/models/stories260K/README.md" \
    "$DST/shared/models/stories260K/"
chmod -R u+w "$DST"
echo "shared: $(find "$DST/shared" -type f | wc -l) files, $(du -sh "$DST/shared" | cut -f1) from $SRC" \
    >>"$DST/MANIFEST"

# ---- library packages (names in tests/gpu/deps.txt) ----
mapfile -t debs < <(awk '$1 == "deb" {for (i = 2; i <= NF; i++) print $i}' "$ROOT/tests/gpu/deps.txt")
(
    cd "$DST/debs"
    # apt's sandbox user cannot write here when run as root: download as root, quietly
    apt-get download -o APT::Sandbox::User=root "${debs[@]}" >/dev/null
)
echo "debs: $(ls "$DST/debs" | wc -l) packages, $(du -sh "$DST/debs" | cut -f1): ${debs[*]}" \
    >>"$DST/MANIFEST"

# ---- binaries built here for sm_90 ----
if [ $prebuilt = 1 ]; then
    B=$ROOT/build-gpu-pack
    targets=(test_cuda_ops ropedist ropedist-convert bench_decode bench_prefill bench_attention)
    gen=()
    command -v ninja >/dev/null && [ ! -f "$B/CMakeCache.txt" ] && gen=(-G Ninja)
    export PATH=/usr/local/cuda/bin:$PATH
    # one shared library holds the device code (once, not in every program); the programs find
    # it beside themselves ($ORIGIN), where run.sh unpacks them all
    cmake -S "$ROOT" -B "$B" "${gen[@]}" -DROPEDIST_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
        -DCMAKE_BUILD_TYPE=Release -DROPEDIST_SHARED_CORE=ON -DCMAKE_SKIP_BUILD_RPATH=OFF \
        -DCMAKE_BUILD_RPATH='$ORIGIN' >/dev/null
    cmake --build "$B" -j "$(nproc)" --target "${targets[@]}" >/dev/null
    mkdir -p "$DST/prebuilt"
    for t in libropedist_core.so "${targets[@]}"; do
        f=$(find "$B" -type f -name "$t" -perm -u+x | awk 'NR == 1')  # awk reads all: no SIGPIPE
        [ -n "$f" ] || { echo "pack: no binary for $t" >&2; exit 1; }
        xz -T0 -6 -c "$f" >"$DST/prebuilt/$t.xz"
    done
    git -C "$ROOT" describe --always --dirty >"$DST/prebuilt/COMMIT"
    echo "prebuilt: ${targets[*]} ($(du -sh "$DST/prebuilt" | cut -f1), commit $(cut -c1-12 "$DST/prebuilt/COMMIT"))" \
        >>"$DST/MANIFEST"
fi

kb=$(du -sk "$DST" | cut -f1)
mb=$(((kb + 1023) / 1024))
tree_mb=$(( ($(git -C "$ROOT" ls-files -z | xargs -0 du -cb 2>/dev/null | tail -n1 | cut -f1) + 1048575) / 1048576 ))
echo "total: ${mb} MiB (the working tree adds about ${tree_mb} MiB; 64 MiB travel in all)" >>"$DST/MANIFEST"
cat "$DST/MANIFEST"
if [ "$mb" -gt "$MAX_MB" ] || [ $((mb + tree_mb)) -gt 63 ]; then
    echo "pack: ${mb} MiB (+ ${tree_mb} MiB of tree) is over the limit" >&2
    exit 1
fi
if [ -n "$(git -C "$ROOT" status --porcelain -- gpu_pack 2>/dev/null)" ]; then
    echo "pack: warning: git does not ignore gpu_pack/" >&2
fi
echo "pack: carry it with carry=[\"gpu_pack\"]"
