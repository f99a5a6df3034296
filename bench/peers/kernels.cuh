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

// The optimized versions, as in kernels-gpu: four elements per loop trip with
// one 16-byte access (float4) when the pointers are 16-byte aligned, then the
// scalar tail.
extern "C" __global__ void producer_vec_kernel(float* buffer, unsigned long long n, unsigned long long first, unsigned int seed, unsigned long long spin) {
    unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    unsigned long long t = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    unsigned long long quads = ((size_t)buffer % 16 == 0) ? n / 4 : 0;
    for (unsigned long long q = t; q < quads; q += stride) {
        unsigned long long i = first + 4 * q;
        reinterpret_cast<float4*>(buffer)[q] = make_float4(produce(i, seed), produce(i + 1, seed), produce(i + 2, seed), produce(i + 3, seed));
    }
    for (unsigned long long i = quads * 4 + t; i < n; i += stride) buffer[i] = produce(first + i, seed);
}

extern "C" __global__ void consumer_vec_kernel(const float* buffer, float* output, unsigned long long n, unsigned long long spin) {
    unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    unsigned long long t = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    unsigned long long quads = ((size_t)buffer % 16 == 0 && (size_t)output % 16 == 0) ? n / 4 : 0;
    for (unsigned long long q = t; q < quads; q += stride) {
        float4 v = reinterpret_cast<const float4*>(buffer)[q];
        reinterpret_cast<float4*>(output)[q] = make_float4(consume(v.x), consume(v.y), consume(v.z), consume(v.w));
    }
    for (unsigned long long i = quads * 4 + t; i < n; i += stride) output[i] = consume(buffer[i]);
}

extern "C" __global__ void fused_vec_kernel(float* output, unsigned long long n, unsigned long long first, unsigned int seed) {
    unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    unsigned long long t = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    unsigned long long quads = ((size_t)output % 16 == 0) ? n / 4 : 0;
    for (unsigned long long q = t; q < quads; q += stride) {
        unsigned long long i = first + 4 * q;
        reinterpret_cast<float4*>(output)[q] = make_float4(consume(produce(i, seed)), consume(produce(i + 1, seed)),
                                                           consume(produce(i + 2, seed)), consume(produce(i + 3, seed)));
    }
    for (unsigned long long i = quads * 4 + t; i < n; i += stride) output[i] = consume(produce(first + i, seed));
}
