"""Peers of `host bench`, measured in the same session on the same GPU:
the CUDA C++ kernels built with nvcc -O3 -arch=sm_90 (peers.cu), the same
source through CuPy's RawModule, and the pipelines in CuPy and PyTorch with
their own streams and events. Writes one JSON file for `host bench --peers`.

Usage: python3 run_peers.py OUT.json [--large BYTES] [--small BYTES] [--reps N]
"""
import argparse, json, os, subprocess, sys, tempfile

here = os.path.dirname(os.path.abspath(__file__))
MiB = 1 << 20


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def nvcc_rows(large, small, reps):
    exe = os.path.join(tempfile.mkdtemp(), "peers")
    subprocess.run(["nvcc", "-O3", "-arch=sm_90", "-o", exe, os.path.join(here, "peers.cu")], check=True)
    out = subprocess.run([exe, str(large), str(small), str(reps)], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["rows"]


def cupy_part(large, small, reps, chunks, total):
    import cupy as cp
    import numpy as np
    src = open(os.path.join(here, "kernels.cuh")).read()
    mod = cp.RawModule(code=src, options=("-std=c++17",))
    prod, cons, fused = (mod.get_function(n) for n in ("producer_kernel", "consumer_kernel", "fused_kernel"))
    dev = cp.cuda.Device(0)
    sms = dev.attributes["MultiProcessorCount"]
    tpm = dev.attributes["MaxThreadsPerMultiProcessor"]
    block = 256

    def grid(n):
        return int(min((n + block - 1) // block, max((tpm // block) * sms // 2, 1)))

    def timed(stream, fn, size):
        batch = max(1, min((64 * MiB) // size, 1024))  # the same rule as host bench
        fn(); stream.synchronize()
        ts = []
        for _ in range(reps):
            a, b = cp.cuda.Event(), cp.cuda.Event()
            a.record(stream)
            for _ in range(batch): fn()
            b.record(stream); b.synchronize()
            ts.append(cp.cuda.get_elapsed_time(a, b) / batch)
        return median(ts)

    rows = []
    s, s2 = cp.cuda.Stream(non_blocking=True), cp.cuda.Stream(non_blocking=True)
    u64, u32 = np.uint64, np.uint32
    for size in (large, small):
        n = size // 4
        buf, out = cp.empty(n, cp.float32), cp.empty(n, cp.float32)
        g = grid(n)
        with s:
            p = timed(s, lambda: prod((g,), (block,), (buf, u64(n), u64(0), u32(7), u64(0)), stream=s), size)
            c = timed(s, lambda: cons((g,), (block,), (buf, out, u64(n), u64(0)), stream=s), size)
            f = timed(s, lambda: fused((g,), (block,), (out, u64(n), u64(0), u32(7)), stream=s), size)

            def handoff():
                prod((g,), (block,), (buf, u64(n), u64(0), u32(7), u64(0)), stream=s)
                e = cp.cuda.Event(disable_timing=True); e.record(s); s2.wait_event(e)
                cons((g,), (block,), (buf, out, u64(n), u64(0)), stream=s2)
                e2 = cp.cuda.Event(disable_timing=True); e2.record(s2); s.wait_event(e2)
            h = timed(s, handoff, size)
        for name, ms, moved in (("producer (seed-style, default grid)", p, 4 * n), ("consumer (seed-style, default grid)", c, 8 * n),
                                ("fused producer+consumer (seed-style, default grid)", f, 4 * n),
                                ("producer -> event -> consumer (two streams)", h, 12 * n)):
            rows.append({"group": "handoff" if "event" in name else "kernel", "name": name, "size_bytes": size,
                         "bytes_moved": moved, "ms": ms, "gbps": moved / (ms * 1e-3) / 1e9, "impl": "cupy"})

    # Pipelines: three streams, rings of K=3 slots, filled and freed events.
    pipes = []
    K = 3
    for chunk in chunks:
        ce = chunk // 4
        nchunks = (total // 4 + ce - 1) // ce
        streams = [cp.cuda.Stream(non_blocking=True) for _ in range(3)]
        rings = [[cp.empty(ce, cp.float32) for _ in range(K)] for _ in range(2)]
        host_in = cp.cuda.alloc_pinned_memory(total)
        host_out = cp.cuda.alloc_pinned_memory(total)
        hin = np.frombuffer(host_in, np.float32, total // 4); hin[:] = 1.5
        hout = np.frombuffer(host_out, np.float32, total // 4)
        sums = cp.zeros((nchunks, 3), cp.float32)

        def run(workload):
            done = {}
            for c in range(nchunks):
                lo, hi = c * ce, min((c + 1) * ce, total // 4)
                m = hi - lo
                for st in range(3):
                    stream = streams[st]
                    if st > 0: stream.wait_event(done[(st - 1, c)])            # filled
                    if st < 2 and c >= K: stream.wait_event(done[(st + 1, c - K)])  # freed
                    with stream:
                        if st == 0:
                            dst = rings[0][c % K][:m]
                            if workload == "generate":
                                prod((grid(m),), (block,), (dst, u64(m), u64(lo), u32(7), u64(0)), stream=stream)
                            else:
                                dst.set(hin[lo:hi], stream=stream)
                        elif st == 1:
                            cons((grid(m),), (block,), (rings[0][c % K][:m], rings[1][c % K][:m], u64(m), u64(0)), stream=stream)
                        else:
                            x = rings[1][c % K][:m]
                            if workload == "generate":
                                sums[c, 0] = x.sum(); sums[c, 1] = x.min(); sums[c, 2] = x.max()
                            else:
                                x.get(out=hout[lo:hi], stream=stream)
                    e = cp.cuda.Event(disable_timing=True); e.record(stream); done[(st, c)] = e
            for st in streams: st.synchronize()

        for workload in ("generate", "stream"):
            run(workload)
            ts = []
            for _ in range(3):
                a, b = cp.cuda.Event(), cp.cuda.Event()
                a.record(streams[0])
                for st in streams[1:]: st.wait_event(a)
                run_t = run(workload)
                for st in streams[1:]:
                    e = cp.cuda.Event(disable_timing=True); e.record(st); streams[0].wait_event(e)
                b.record(streams[0]); b.synchronize()
                ts.append(cp.cuda.get_elapsed_time(a, b))
            ms = median(ts)
            pipes.append({"workload": workload, "chunk_bytes": chunk, "mode": "cupy ring K=3", "ms": ms,
                          "gbps": total / (ms * 1e-3) / 1e9, "impl": "cupy"})
        if not (hout == 3.0).all():
            raise SystemExit("error: cupy stream pipeline output wrong")
    return rows, pipes


def torch_part(large, reps, chunks, total):
    import torch
    dev = torch.device("cuda")

    def produce(idx, seed=7):
        m = 0xFFFFFFFF
        def h(x):
            x = x ^ (x >> 16); x = (x * 0x7feb352d) & m; x = x ^ (x >> 15); x = (x * 0x846ca68b) & m; return x ^ (x >> 16)
        hi = h(((idx >> 32) ^ seed) & m)
        v = h((idx & m) ^ hi)
        bits = (0x3f800000 | (v >> 9)).to(torch.int32)
        return bits.view(torch.float32) * 2.0 - 3.0

    rows, pipes = [], []
    n = large // 4
    s, s2 = torch.cuda.Stream(), torch.cuda.Stream()
    idx = torch.arange(n, device=dev, dtype=torch.int64)
    torch.cuda.synchronize()

    def handoff():
        with torch.cuda.stream(s):
            buf = produce(idx)
            e = torch.cuda.Event(); e.record(s)
        s2.wait_event(e)
        with torch.cuda.stream(s2):
            out = buf * 2.0
            e2 = torch.cuda.Event(); e2.record(s2)
        s.wait_event(e2)
        return out

    out = handoff(); torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(s); handoff(); b.record(s); b.synchronize(); ts.append(a.elapsed_time(b))
    ms = median(ts)
    rows.append({"group": "handoff", "name": "producer -> event -> consumer (two streams)", "size_bytes": large,
                 "bytes_moved": 12 * n, "ms": ms, "gbps": 12 * n / (ms * 1e-3) / 1e9, "impl": "pytorch"})
    del idx, out

    K = 3
    for chunk in chunks:
        ce = chunk // 4
        nchunks = (total // 4 + ce - 1) // ce
        streams = [torch.cuda.Stream() for _ in range(3)]
        hin = torch.full((total // 4,), 1.5, dtype=torch.float32).pin_memory()
        hout = torch.empty(total // 4, dtype=torch.float32).pin_memory()
        rings = [[torch.empty(ce, device=dev) for _ in range(K)] for _ in range(2)]
        base = torch.arange(ce, device=dev, dtype=torch.int64)
        stats = torch.zeros((nchunks, 3), device=dev)
        hist = torch.zeros((nchunks, 16), device=dev)

        def run(workload):
            done = {}
            for c in range(nchunks):
                lo, hi = c * ce, min((c + 1) * ce, total // 4)
                m = hi - lo
                for st in range(3):
                    stream = streams[st]
                    if st > 0: stream.wait_event(done[(st - 1, c)])
                    if st < 2 and c >= K: stream.wait_event(done[(st + 1, c - K)])
                    with torch.cuda.stream(stream):
                        if st == 0:
                            if workload == "generate":
                                rings[0][c % K][:m].copy_(produce(base[:m] + lo))
                            else:
                                rings[0][c % K][:m].copy_(hin[lo:hi], non_blocking=True)
                        elif st == 1:
                            torch.mul(rings[0][c % K][:m], 2.0, out=rings[1][c % K][:m])
                        else:
                            x = rings[1][c % K][:m]
                            if workload == "generate":
                                stats[c, 0] = x.sum(); stats[c, 1] = x.min(); stats[c, 2] = x.max()
                                hist[c] = torch.histc(x, bins=16, min=-4, max=4)
                            else:
                                hout[lo:hi].copy_(x, non_blocking=True)
                        e = torch.cuda.Event(); e.record(stream); done[(st, c)] = e
            return done

        for workload in ("generate", "stream"):
            run(workload); torch.cuda.synchronize()
            ts = []
            for _ in range(3):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record(streams[0])
                for st in streams[1:]: st.wait_event(a)
                run(workload)
                for st in streams[1:]:
                    e = torch.cuda.Event(); e.record(st); streams[0].wait_event(e)
                b.record(streams[0]); b.synchronize(); ts.append(a.elapsed_time(b))
            ms = median(ts)
            pipes.append({"workload": workload, "chunk_bytes": chunk, "mode": "pytorch ring K=3", "ms": ms,
                          "gbps": total / (ms * 1e-3) / 1e9, "impl": "pytorch"})
        if not bool((hout == 3.0).all()):
            raise SystemExit("error: pytorch stream pipeline output wrong")
    return rows, pipes


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--large", type=int, default=256 * MiB)
    ap.add_argument("--small", type=int, default=4 * MiB)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--total", type=int, default=256 * MiB)
    ap.add_argument("--chunks", default="65536,1048576,4194304,16777216,67108864")
    a = ap.parse_args()
    chunks = [int(c) for c in a.chunks.split(",")]
    rows, pipes = [], []
    errors = []
    # Each peer on its own: one that fails is reported, the others still run.
    for name, part in (("nvcc", lambda: (nvcc_rows(a.large, a.small, a.reps), [])),
                       ("cupy", lambda: cupy_part(a.large, a.small, a.reps, chunks, a.total)),
                       ("pytorch", lambda: torch_part(a.large, a.reps, chunks, a.total))):
        try:
            r, p = part(); rows += r; pipes += p
        except Exception as e:  # noqa: BLE001 - reported, and the exit status says so
            print("error: %s peer: %s" % (name, e), file=sys.stderr)
            errors.append("%s: %s" % (name, e))
    json.dump({"rows": rows, "pipelines": pipes, "errors": errors}, open(a.out, "w"), indent=1)
    for x in rows:
        print("%-8s %-48s %10d %10.4f ms %8.1f GB/s" % (x["impl"], x["name"], x["size_bytes"], x["ms"], x["gbps"]))
    for x in pipes:
        print("%-8s %-8s chunk %10d %-20s %9.3f ms %8.1f GB/s" % (x["impl"], x["workload"], x["chunk_bytes"], x["mode"], x["ms"], x["gbps"]))
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
