// The project's kernels in CUDA C++, seed-style (one element per loop trip,
// grid-stride), with the same per-element math as kernel-math/src/lib.rs, so
// results match the Rust kernels bit for bit. Used by peers.cu (nvcc) and by
// run_peers.py (CuPy RawModule).
#pragma once

__device__ __forceinline__ unsigned int hash32(unsigned int x) {
    x ^= x >> 16; x *= 0x7feb352dU; x ^= x >> 15; x *= 0x846ca68bU; x ^= x >> 16;
    return x;
}

__device__ __forceinline__ float produce(unsigned long long index, unsigned int seed) {
    unsigned int hi = hash32((unsigned int)(index >> 32) ^ seed);
    unsigned int h = hash32((unsigned int)index ^ hi);
    float unit = __uint_as_float(0x3f800000U | (h >> 9));
    return __fmul_rn(unit, 2.0f) - 3.0f;   // exact: no FMA contraction changes it
}

__device__ __forceinline__ float consume(float x) { return x * 2.0f; }

extern "C" __global__ void producer_kernel(float* buffer, unsigned long long n, unsigned long long first, unsigned int seed, unsigned long long spin) {
    unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        buffer[i] = produce(first + i, seed);
}

extern "C" __global__ void consumer_kernel(const float* buffer, float* output, unsigned long long n, unsigned long long spin) {
    unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        output[i] = consume(buffer[i]);
}

extern "C" __global__ void fused_kernel(float* output, unsigned long long n, unsigned long long first, unsigned int seed) {
    unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        output[i] = consume(produce(first + i, seed));
}
