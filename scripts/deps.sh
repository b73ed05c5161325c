#!/bin/bash
# deps.sh — install the Debian 12 packages bokehlab needs, only if some are missing.
#   scripts/deps.sh           install what is missing (apt-get update only then)
#   scripts/deps.sh --check   list what is missing and fail, installing nothing
#   scripts/deps.sh --python  also the Python packages of scripts/ (fixtures, weight converters)
#   scripts/deps.sh --mpi     also Open MPI (data-parallel training, docs/MULTI_MACHINE.md);
#                             BOKEHLAB_MPI=1 in the environment (set by `make MPI=1`) does the same
#   scripts/deps.sh --fuzz    also clang with libFuzzer and the sanitizers, and LLVM's OpenMP
#                             runtime (make fuzz builds the library with clang and -fopenmp)
# Flags combine: scripts/deps.sh --check --mpi.
set -euo pipefail

check=0 python=0 fuzz=0 mpi=${BOKEHLAB_MPI:-0}
for a in "$@"; do
    case "$a" in
    --check) check=1 ;;
    --python) python=1 ;;
    --mpi) mpi=1 ;;
    --fuzz) fuzz=1 ;;
    *) echo "deps.sh: unknown option $a (--check, --python, --mpi, --fuzz)" >&2; exit 2 ;;
    esac
done

packages=(gcc libc6-dev make pkg-config
          libdnnl-dev libhdf5-dev libpng-dev libjpeg62-turbo-dev)
[ "$python" = 1 ] && packages+=(python3-torch python3-h5py python3-numpy python3-skimage)
[ "$mpi" = 1 ] && packages+=(libopenmpi-dev openmpi-bin)
[ "$fuzz" = 1 ] && packages+=(clang-14 libclang-rt-14-dev libomp-14-dev)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
hint="make deps"
[ "$mpi" = 1 ] && hint="make MPI=1 deps"

if [ "$check" = 1 ]; then
    echo "bokehlab: missing Debian packages: ${missing[*]}" >&2
    echo "bokehlab: run '$hint' (as root) to install them" >&2
    exit 1
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "bokehlab: installing ${missing[*]} needs root; run: sudo $hint" >&2
    exit 1
fi
echo "bokehlab: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
