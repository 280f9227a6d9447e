#!/usr/bin/env bash
# The NCCL variant of the fault tests (label gpu): the cuda backend with ranks sharing the one
# GPU (--share-gpu, NCCL over loopback). A rank killed mid-generation must end every rank within
# 30 s with a message naming it; SIGTERM/SIGINT must end all ranks. Skips without a GPU (the
# emulation build, RD_SIMT_EMU=1, has emulated ones).
if [ -z "${RD_SIMT_EMU:-}" ] && ! nvidia-smi -L >/dev/null 2>&1; then
    echo "SKIP: no GPU"
    exit 77
fi
export RD_FAULT_DEVICE=cuda NCCL_SOCKET_IFNAME=${NCCL_SOCKET_IFNAME:-lo}
here=$(dirname "$0")
bash "$here/../mpi/fault_kill.sh" && bash "$here/../mpi/fault_signal.sh"
