#!/usr/bin/env bash
# The SLURM tests skip, rather than fail, where slurmd cannot run for a reason of the machine's:
# slurm_test.sh is run in a private mount namespace with /sys/fs/cgroup unmounted (as on a host
# without a cgroup file system) and must exit 77 with a SKIP line naming the cgroups. Exits 77
# itself where SLURM is absent, we are not root, or such a namespace cannot be made.
set -u
here=$(cd "$(dirname "$0")" && pwd)
source "$here/slurm_lib.sh"
rd_slurm_require
command -v unshare >/dev/null || { echo "SKIP: no unshare (util-linux)"; exit 77; }
probe='umount -R /sys/fs/cgroup 2>/dev/null || umount -l /sys/fs/cgroup 2>/dev/null
       if awk '"'"'$2 == "/sys/fs/cgroup" { f = 1 } END { exit !f }'"'"' /proc/mounts; then
           echo "cannot unmount /sys/fs/cgroup"; exit 99; fi'
out=$(unshare -m bash -c "$probe
      exec bash '$here/slurm_test.sh'" 2>&1)
rc=$?
if [ "$rc" = 99 ] || ! unshare -m true 2>/dev/null; then
    echo "SKIP: cannot make a mount namespace without cgroups here ($out)"
    exit 77
fi
echo "$out" | tail -n 5 | sed 's/^/  | /'
[ "$rc" = 77 ] || { echo "FAIL: slurm_test.sh exited $rc without cgroups (77, a skip, expected)"; exit 1; }
echo "$out" | grep -q "^SKIP:.*cgroup" || { echo "FAIL: the skip does not name the cgroups"; exit 1; }
echo "PASS: without cgroups the SLURM tests skip and say why"
