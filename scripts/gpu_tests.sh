#!/usr/bin/env bash
# The GPU tests of a COYOTE_ENABLE_GPU=ON build (getMem(GPU) through the CUDA driver API, on the fake driver and a
# fake libcuda.so.1). They need only the CUDA toolkit's cuda.h to build, no GPU. Without a toolkit they are skipped
# with a message. Builds into ${COYOTE_GPU_BUILD_DIR:-./build-gpu} only the targets these tests need.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${COYOTE_GPU_BUILD_DIR:-$repo_root/build-gpu}"
cuda_root="${CUDAToolkit_ROOT:-/usr/local/cuda}"

if [[ ! -f "$cuda_root/include/cuda.h" ]]; then
    echo "gpu_tests: skipped: no CUDA toolkit at $cuda_root (no include/cuda.h; set CUDAToolkit_ROOT)" >&2
    exit 0
fi

start=$SECONDS
cmake -S "$repo_root" -B "$build_dir" -G Ninja -DCOYOTE_ENABLE_GPU=ON -DCUDAToolkit_ROOT="$cuda_root" >/dev/null
cmake --build "$build_dir" -j"$(nproc)" --target hw_gpu_test coyote_fake_driver coyote_fake_cuda
echo "gpu_tests: build took $((SECONDS - start)) s" >&2
cd "$build_dir"
ctest --output-on-failure -R '^hw_gpu_test'
echo "gpu_tests: done in $((SECONDS - start)) s" >&2
