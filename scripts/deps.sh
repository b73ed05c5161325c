#!/bin/bash
# deps.sh — install the Debian 12 packages bokehlab needs, only if some are missing.
#   scripts/deps.sh           install what is missing (apt-get update only then)
#   scripts/deps.sh --check   list what is missing and fail, installing nothing
#   scripts/deps.sh --python  also the Python packages of scripts/ (fixtures, weight converters)
#   scripts/deps.sh --fuzz    also clang with libFuzzer and the sanitizers, and LLVM's OpenMP
#                             runtime (make fuzz builds the library with clang and -fopenmp)
set -euo pipefail

packages=(gcc libc6-dev make pkg-config
          libdnnl-dev libhdf5-dev libpng-dev libjpeg62-turbo-dev)
[ "${1:-}" = "--python" ] && packages+=(python3-torch python3-h5py python3-numpy python3-skimage)
[ "${1:-}" = "--fuzz" ] && packages+=(clang-14 libclang-rt-14-dev libomp-14-dev)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "${1:-}" = "--check" ]; then
    echo "bokehlab: missing Debian packages: ${missing[*]}" >&2
    echo "bokehlab: run 'make deps' (as root) to install them" >&2
    exit 1
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "bokehlab: installing ${missing[*]} needs root; run: sudo make deps" >&2
    exit 1
fi
echo "bokehlab: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
