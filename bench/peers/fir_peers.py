"""Peers of the wav_fir example: the same causal FIR, y[i] = sum_j taps[j]
x[i-j] with zeros before the start, over each channel of the same WAV with
the same taps, in CuPy (direct convolution) and PyTorch (conv1d) on the GPU.
Reports throughput and the difference from wav_fir's CPU output (which its
GPU output matches bit for bit). The peers differ from it in the last bits:
they add the products in another order (and may fuse multiply and add), so
the difference is stated, not checked.

Usage: python3 fir_peers.py IN.wav CPU_OUT.wav TAPS.txt [--json OUT.json] [--reps N]

IN.wav: what wav_fir read; CPU_OUT.wav: its --cpu-out; TAPS.txt: its
OUT.wav.taps.txt. Needs numpy; cupy and torch are each used when present.
"""
import argparse, json, statistics, sys, time
import numpy as np

WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT, WAVE_FORMAT_EXTENSIBLE = 1, 3, 0xFFFE


def read_wav(path):
    """(rate, channels x frames float32), converted exactly as wav_fir does:
    integers of b bits / 2^(b-1) (32-bit ones first lose their 8 low bits),
    floats as they are. The RIFF chunks are parsed by hand: Python's `wave`
    module refuses float WAVs."""
    data = np.fromfile(path, dtype=np.uint8).tobytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file")
    fmt = body = None
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        chunk = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            fmt = chunk
        elif cid == b"data":
            body = chunk
        pos += 8 + size + (size & 1)  # chunks are padded to even sizes
    if fmt is None or body is None:
        raise ValueError(f"{path}: no fmt or data chunk")
    tag, nch, rate = (int.from_bytes(fmt[a:b], "little") for a, b in ((0, 2), (2, 4), (4, 8)))
    align, bits = (int.from_bytes(fmt[a:b], "little") for a, b in ((12, 14), (14, 16)))
    if tag == WAVE_FORMAT_EXTENSIBLE:
        tag = int.from_bytes(fmt[24:26], "little")  # the sub-format GUID starts with the tag
    width = align // nch
    if width * 8 != bits:
        raise ValueError(f"{path}: {bits}-bit samples in {width}-byte containers are not supported")
    frames = len(body) // align
    raw = np.frombuffer(body[:frames * align], dtype=np.uint8)
    if tag == WAVE_FORMAT_IEEE_FLOAT and bits == 32:
        x = raw.view("<f4").astype(np.float32)
    elif tag == WAVE_FORMAT_PCM:
        if bits == 8:
            i = raw.astype(np.int32) - 128  # 8-bit PCM is unsigned
        elif bits == 16:
            i = raw.view("<i2").astype(np.int32)
        elif bits == 24:
            b = raw.reshape(-1, 3).astype(np.int32)
            i = ((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8) >> 8  # sign-extend
        elif bits == 32:
            i = raw.view("<i4")
        else:
            raise ValueError(f"{path}: {bits}-bit integer samples are not supported")
        shift = max(bits - 24, 0)
        x = (i >> shift).astype(np.float32) / np.float32(2 ** (bits - 1 - shift))
    else:
        raise ValueError(f"{path}: format {tag:#x} with {bits} bits is not supported")
    return rate, np.ascontiguousarray(x.reshape(frames, nch).T)


def read_taps(path):
    """Numbers separated by whitespace or commas; `#` starts a comment."""
    words = []
    for line in open(path):
        words += line.split("#")[0].replace(",", " ").split()
    return np.array([float(w) for w in words], dtype=np.float32)


def compare(y, ref):
    """Max abs diff, max ULP diff, bit-identical count of y against ref."""
    a, b = y.view(np.int32).astype(np.int64), ref.view(np.int32).astype(np.int64)
    # Map the bits to integers ordered like the floats (-0 and +0 both 0).
    a, b = (np.where(v < 0, -(v & 0x7FFFFFFF), v) for v in (a, b))
    return {"max_abs_diff": float(np.max(np.abs(y.astype(np.float64) - ref.astype(np.float64)))),
            "max_ulp_diff": int(np.max(np.abs(a - b))),
            "bit_identical": int(np.sum(y.view(np.uint32) == ref.view(np.uint32)))}


def in_order(x, taps):
    """wav_fir's sum, vectorized over i: acc = acc + taps[j] * x[i-j] for j = 0, 1, ..,
    each operation rounded to f32 (numpy does not fuse them)."""
    acc = np.zeros_like(x)
    for j, t in enumerate(taps):
        acc[j:] = acc[j:] + t * x[:len(x) - j]
        acc[:j] = acc[:j] + t * np.float32(0)  # the zeros before the start, as wav_fir adds them
    return acc


def median_time(fn, reps, sync, events=None):
    """Median seconds of fn() after one warm-up: CUDA events when given
    (GPU time), else synchronize + perf_counter (host clock)."""
    fn(); sync()
    ts = []
    for _ in range(reps):
        if events:
            a, b = events()
            a.record(); fn(); b.record(); b.synchronize()
            ts.append(a.elapsed(b) * 1e-3)
        else:
            sync(); t = time.perf_counter(); fn(); sync()
            ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def cupy_rows(x, taps, reps):
    import cupy as cp
    from cupyx.scipy import signal
    n = x.shape[1]
    t = cp.asarray(taps)
    xs = [cp.asarray(c) for c in x]
    # Forced direct (not FFT) convolution: the same sum as ours, in another order.
    conv = lambda c: signal.convolve(c, t, mode="full", method="direct")[:n]

    class Ev:
        def __init__(self): self.e = cp.cuda.Event()
        def record(self): self.e.record()
        def synchronize(self): self.e.synchronize()
        def elapsed(self, other): return cp.cuda.get_elapsed_time(self.e, other.e)
    sync = cp.cuda.Device().synchronize
    gpu = median_time(lambda: [conv(c) for c in xs], reps, sync, lambda: (Ev(), Ev()))
    copies = median_time(lambda: [cp.asnumpy(conv(cp.asarray(c))) for c in x], reps, sync)
    y = np.stack([cp.asnumpy(conv(c)) for c in xs])
    name = cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    return [("cupy", f"cupyx.scipy.signal.convolve method=direct (CuPy {cp.__version__})", gpu, copies, y)], name


def torch_rows(x, taps, reps):
    import torch
    import torch.nn.functional as F
    dev = torch.device("cuda")
    T = len(taps)
    # conv1d is a cross-correlation: flip the taps; T-1 zeros on the left make it causal.
    w = torch.from_numpy(taps[::-1].copy()).to(dev).view(1, 1, T)
    xs = [torch.from_numpy(c).to(dev).view(1, 1, -1) for c in x]
    conv = lambda c: F.conv1d(F.pad(c, (T - 1, 0)), w).view(-1)

    class Ev:
        def __init__(self): self.e = torch.cuda.Event(enable_timing=True)
        def record(self): self.e.record()
        def synchronize(self): self.e.synchronize()
        def elapsed(self, other): return self.e.elapsed_time(other.e)
    rows = []
    for tf32 in (False, True):
        # cuDNN may use TF32 (10-bit mantissa) for f32 convolutions on this GPU by default.
        torch.backends.cudnn.allow_tf32 = tf32
        gpu = median_time(lambda: [conv(c) for c in xs], reps, torch.cuda.synchronize, lambda: (Ev(), Ev()))
        copies = median_time(lambda: [conv(torch.from_numpy(c).to(dev).view(1, 1, -1)).cpu() for c in x], reps, torch.cuda.synchronize)
        y = np.stack([conv(c).cpu().numpy() for c in xs])
        rows.append(("torch", f"torch conv1d, cuDNN TF32 {'allowed (default)' if tf32 else 'off'} (PyTorch {torch.__version__})", gpu, copies, y))
    return rows, torch.cuda.get_device_name(0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input"); ap.add_argument("cpu_out"); ap.add_argument("taps")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--reps", type=int, default=20, help="timed repetitions (median), after one warm-up")
    args = ap.parse_args()
    try:
        rate, x = read_wav(args.input)
        rate_out, cpu = read_wav(args.cpu_out)
        taps = read_taps(args.taps)
    except (OSError, ValueError) as e:
        sys.exit(f"error: {e}")
    if cpu.shape != x.shape or rate_out != rate:
        sys.exit(f"error: {args.cpu_out} has shape {cpu.shape} at {rate_out} Hz but {args.input} has {x.shape} at {rate} Hz")
    if len(taps) == 0:
        sys.exit(f"error: {args.taps}: no taps")
    samples = x.size
    print(f"{args.input}: {x.shape[0]} channel(s) x {x.shape[1]} samples at {rate} Hz, {len(taps)} taps")

    # The peers' inputs are right: numpy in f32, adding the taps in wav_fir's order, gives its output bit for bit.
    same = np.stack([in_order(c, taps) for c in x])
    n_same = compare(same, cpu)["bit_identical"]
    print(f"numpy f32, taps added in wav_fir's order: {n_same}/{samples} samples bit-identical to wav_fir's CPU output")
    if n_same != samples:
        sys.exit("error: the inputs, taps or conversion differ from wav_fir's; the comparisons below would be meaningless")
    # Context for the peers' differences: how far wav_fir's CPU output is from an f64 computation.
    exact = np.stack([np.convolve(c.astype(np.float64), taps.astype(np.float64))[:x.shape[1]] for c in x])
    ref_err = float(np.max(np.abs(cpu.astype(np.float64) - exact)))
    print(f"wav_fir's CPU output vs numpy float64 convolution: max abs diff {ref_err:.3g}")

    rows, device, failed = [], None, []
    for impl, fn in (("cupy", cupy_rows), ("torch", torch_rows)):
        try:
            got, device = fn(x, taps, args.reps)
        except Exception as e:  # one peer missing or broken must not hide the other
            print(f"{impl}: skipped: {type(e).__name__}: {e}".splitlines()[0])
            failed.append(impl)
            continue
        for impl, name, gpu_s, copies_s, y in got:
            y = np.asarray(y, dtype=np.float32)
            row = {"impl": impl, "name": name, "samples": samples, "taps": len(taps),
                   "gpu_ms": gpu_s * 1e3, "with_copies_ms": copies_s * 1e3,
                   "msamples_per_s": samples / gpu_s / 1e6, "gbps": samples * 4 / gpu_s / 1e9,
                   "with_copies_gbps": samples * 4 / copies_s / 1e9, **compare(y, cpu)}
            rows.append(row)

    print(f"device: {device}; throughput of f32 input, all channels together; GPU time by CUDA events on")
    print("device-resident data; 'with copies': host clock, pageable numpy in and out; median of", args.reps)
    print(f"{'peer':<58} {'GPU ms':>8} {'GB/s':>7} {'copies ms':>9} {'GB/s':>6}  {'max abs diff':>12} {'max ULP':>7}  bit-identical")
    for r in rows:
        print(f"{r['name']:<58} {r['gpu_ms']:>8.3f} {r['gbps']:>7.2f} {r['with_copies_ms']:>9.3f} {r['with_copies_gbps']:>6.2f}  "
              f"{r['max_abs_diff']:>12.3g} {r['max_ulp_diff']:>7}  {r['bit_identical']}/{samples}")
    print("(differences against wav_fir's CPU output, which its GPU output equals bit for bit;")
    print(" the peers sum the products in another order, with or without FMA: last-bit differences are expected)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"input": args.input, "device": device, "rate": rate, "channels": x.shape[0], "samples": samples,
                       "taps": len(taps), "reps": args.reps, "cpu_vs_f64_max_abs_diff": ref_err, "rows": rows}, f, indent=1)
    if failed:
        sys.exit(f"error: peer(s) not run: {', '.join(failed)}")


if __name__ == "__main__":
    main()
