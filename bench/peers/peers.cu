// CUDA C++ peer of `host bench`'s kernel figures: the same kernels
// (kernels.cuh), the same sizes and launch shapes, timed the same way (CUDA
// events, median of repetitions after a warm-up). Prints JSON rows.
// Build: nvcc -O3 -arch=sm_90 -o peers peers.cu
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <algorithm>
#include <string>
#include <cstring>
#include "kernels.cuh"

#define CHECK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { \
    fprintf(stderr, "error: %s: %s\n", #x, cudaGetErrorString(e)); exit(1); } } while (0)

// Same rule as `host bench`: batch launches to ~64 MiB of traffic per timing.
static int batch_for(unsigned long long size) { unsigned long long b = (64ull << 20) / (size ? size : 1); return (int)std::max(1ull, std::min(b, 1024ull)); }

template <typename F> double time_ms(cudaStream_t s, int reps, unsigned long long size, F f) {
    cudaEvent_t a, b; CHECK(cudaEventCreate(&a)); CHECK(cudaEventCreate(&b));
    int batch = batch_for(size);
    f(); CHECK(cudaGetLastError()); CHECK(cudaStreamSynchronize(s));
    std::vector<double> t;
    for (int r = 0; r < reps; r++) {
        CHECK(cudaEventRecord(a, s)); for (int k = 0; k < batch; k++) f(); CHECK(cudaGetLastError()); CHECK(cudaEventRecord(b, s));
        CHECK(cudaEventSynchronize(b)); float ms; CHECK(cudaEventElapsedTime(&ms, a, b)); t.push_back(ms / batch);
    }
    std::sort(t.begin(), t.end());
    CHECK(cudaEventDestroy(a)); CHECK(cudaEventDestroy(b));
    return t[t.size() / 2];
}

static bool first_row = true;
static void row(const char* group, const std::string& name, unsigned long long size, unsigned long long moved, double ms) {
    printf("%s{\"group\": \"%s\", \"name\": \"%s\", \"size_bytes\": %llu, \"bytes_moved\": %llu, \"ms\": %.6f, \"gbps\": %.3f, \"impl\": \"nvcc\"}\n",
           first_row ? "" : ",", group, name.c_str(), size, moved, ms, moved / (ms * 1e-3) / 1e9);
    first_row = false;
}

static float host_produce(unsigned long long i, unsigned int seed) {
    auto h = [](unsigned int x) { x ^= x >> 16; x *= 0x7feb352dU; x ^= x >> 15; x *= 0x846ca68bU; x ^= x >> 16; return x; };
    unsigned int hi = h((unsigned int)(i >> 32) ^ seed), v = h((unsigned int)i ^ hi);
    unsigned int bits = 0x3f800000U | (v >> 9); float u; memcpy(&u, &bits, 4);
    return u * 2.0f - 3.0f;
}

int main(int argc, char** argv) {
    unsigned long long large = argc > 1 ? strtoull(argv[1], 0, 10) : 256ull << 20;
    unsigned long long small = argc > 2 ? strtoull(argv[2], 0, 10) : 4ull << 20;
    int reps = argc > 3 ? atoi(argv[3]) : 20;
    cudaDeviceProp prop; CHECK(cudaGetDeviceProperties(&prop, 0));
    cudaStream_t s, s2; CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)); CHECK(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking));
    cudaEvent_t ev; CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    printf("{\"device\": \"%s\", \"rows\": [\n", prop.name);
    const unsigned int block = 256, seed = 7; const unsigned long long first = 0, spin = 0;
    for (unsigned long long size : {large, small}) {
        unsigned long long n = size / 4;
        float *buf, *out; CHECK(cudaMalloc(&buf, size)); CHECK(cudaMalloc(&out, size));
        // Same launch shapes as the Rust runtime: at most half the resident capacity, or one thread per element.
        unsigned long long resident = (unsigned long long)(prop.maxThreadsPerMultiProcessor / block) * prop.multiProcessorCount;
        unsigned int grid_default = (unsigned int)std::min((n + block - 1) / block, std::max(resident / 2, 1ull));
        unsigned int grid_full = (unsigned int)std::min((n + block - 1) / block, 2147483647ull);
        unsigned int grid_resident = (unsigned int)std::min((n / 4 + block - 1) / block, std::max(resident, 1ull));
        for (int shape = 0; shape < 4; shape++) {
            bool vec = shape >= 2;
            unsigned int grid = shape == 0 ? grid_default : shape == 1 ? grid_full : shape == 2 ? grid_default : grid_resident;
            const char* labels[] = {" (seed-style, default grid)", " (seed-style, one thread per element)", " (vec16, default grid)", " (vec16, resident grid)"};
            std::string label = labels[shape];
            row("kernel", "producer" + label, size, 4 * n, time_ms(s, reps, size, [&] {
                if (vec) producer_vec_kernel<<<grid, block, 0, s>>>(buf, n, first, seed, spin); else producer_kernel<<<grid, block, 0, s>>>(buf, n, first, seed, spin); }));
            row("kernel", "consumer" + label, size, 8 * n, time_ms(s, reps, size, [&] {
                if (vec) consumer_vec_kernel<<<grid, block, 0, s>>>(buf, out, n, spin); else consumer_kernel<<<grid, block, 0, s>>>(buf, out, n, spin); }));
            row("kernel", "fused producer+consumer" + label, size, 4 * n, time_ms(s, reps, size, [&] {
                if (vec) fused_vec_kernel<<<grid, block, 0, s>>>(out, n, first, seed); else fused_kernel<<<grid, block, 0, s>>>(out, n, first, seed); }));
        }
        row("handoff", "producer -> event -> consumer (two streams)", size, 12 * n, time_ms(s, reps, size, [&] {
            producer_vec_kernel<<<grid_default, block, 0, s>>>(buf, n, first, seed, spin);
            CHECK(cudaEventRecord(ev, s)); CHECK(cudaStreamWaitEvent(s2, ev, 0));
            consumer_vec_kernel<<<grid_default, block, 0, s2>>>(buf, out, n, spin);
            CHECK(cudaEventRecord(ev, s2)); CHECK(cudaStreamWaitEvent(s, ev, 0));
        }));
        // Check the results against the host, every element.
        std::vector<float> h(n); CHECK(cudaDeviceSynchronize());
        CHECK(cudaMemcpy(h.data(), out, size, cudaMemcpyDeviceToHost));
        for (unsigned long long i = 0; i < n; i++) {
            float want = host_produce(i, seed) * 2.0f;
            if (memcmp(&h[i], &want, 4) != 0) { fprintf(stderr, "error: nvcc peer wrong at %llu\n", i); return 1; }
        }
        CHECK(cudaFree(buf)); CHECK(cudaFree(out));
    }
    printf("]}\n");
    return 0;
}
