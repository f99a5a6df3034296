"""Triton peer of `host bench`: the project's kernels written as
`@triton.jit` functions (producer, consumer, fused producer+consumer, and
the exact per-chunk reduce), timed like run_peers.py times its peers (CUDA
events, median over repetitions, the same batch rule), and the small-chunk
generate pipeline (producer -> consumer -> reduce per chunk, launched from
Python on one stream, then captured once in a CUDA graph and replayed).

Every result is checked against a NumPy reference that computes the same
formulas as kernel-math/src/lib.rs (bit for bit for produce and consume,
exactly for the reduce records). A mismatch is printed, the row is left out
and the exit status is 1: a wrong kernel never yields a figure.

Usage:
  python3 triton_peers.py OUT.json [--merge-into PEERS.json] [--large BYTES]
      [--small BYTES] [--reps N] [--total BYTES] [--chunks LIST] [--no-graph]
  python3 triton_peers.py --self-test     no GPU, no Triton: the NumPy reference
                                          against a pure-Python one
  python3 triton_peers.py --interpret     no GPU: the kernels under Triton's
                                          interpreter (TRITON_INTERPRET=1, needs
                                          triton and torch), small sizes, checked

--merge-into appends the rows, pipelines and errors to a JSON file that
run_peers.py wrote, so `host bench --peers PEERS.json` shows them beside the
others. Exit status: 0 all checked and measured, 1 a check or a part failed,
2 Triton (or torch with CUDA) is not available.
"""
import argparse
import json
import math
import os
import random
import struct
import sys

# The interpreter is chosen when triton is imported, so before the import.
if "--interpret" in sys.argv:
    os.environ["TRITON_INTERPRET"] = "1"

try:
    import numpy as np
except ImportError:  # the self-test says so; the GPU part needs numpy anyway
    np = None

try:
    import torch
    import triton
    import triton.language as tl
    IMPORT_ERROR = None
except Exception as e:  # noqa: BLE001 - any failure to import means no Triton peer
    torch = triton = tl = None
    IMPORT_ERROR = e

MiB = 1 << 20
KERNEL_SEED = 7           # the seed of host bench's and peers.cu's kernel rows
PIPELINE_SEED = 0x5EED    # PipelineSpec's default seed (pipeline/src/spec.rs)
FIXED_ONE = 4194304.0     # 2^22, kernel_math::FIXED_ONE
HIST_BINS = 16            # kernel_math::HIST_BINS
M32 = 0xFFFFFFFF
I32_MAX, I32_MIN = 2**31 - 1, -2**31
I64_MAX, I64_MIN = 2**63 - 1, -2**63
BLOCK = 1024              # elements per program of the element-wise kernels
RBLOCK = 2048             # elements per loop trip of a reduce program
RPROGRAMS_PER_SM = 4      # reduce programs per SM (grid-stride beyond that)
DEVICE = "cuda"           # where the GPU part allocates (a test harness may point it elsewhere)


# ---------------------------------------------------------------------------
# Pure-Python reference: the formulas of kernel-math, one element at a time,
# with Python integers masked to 32 bits and binary32 rounding done by
# struct. It shares no code with the NumPy reference below, which the
# self-test checks against it.
# ---------------------------------------------------------------------------

def f32(x):
    """x rounded to binary32. struct rounds to nearest even, and raises only
    when the rounded value overflows, which is then the infinity IEEE gives.
    (A float32 operation done in double and rounded once is exact for + - *:
    double has more than 2*24+2 bits.)"""
    try:
        return struct.unpack("<f", struct.pack("<f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def f32_from_bits(b):
    return struct.unpack("<f", struct.pack("<I", b))[0]


def py_hash32(x):
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    x ^= x >> 16
    return x


def py_produce(index, seed):
    hi = py_hash32(((index >> 32) ^ seed) & M32)
    h = py_hash32((index & M32) ^ hi)
    unit = f32_from_bits(0x3F800000 | (h >> 9))
    return f32(f32(unit * 2.0) - 3.0)


def py_consume(x):
    return f32(x * 2.0)


def py_saturating_int(x, lo, hi):
    """Rust's `float as iN`: toward zero, saturating, NaN is 0."""
    if math.isnan(x):
        return 0
    if x >= hi + 1:
        return hi
    if x <= lo - 1:
        return lo
    return max(lo, min(hi, int(x)))


def py_to_fixed(v):
    return py_saturating_int(f32(v * FIXED_ONE), I64_MIN, I64_MAX)


def py_order_key(v):
    b = f32_bits(v)
    return (~b & M32) if b & 0x80000000 else (b | 0x80000000)


def py_hist_bin(v):
    b = py_saturating_int(f32(f32(v + 4.0) * 2.0), I32_MIN, I32_MAX)
    return 0 if b < 0 else 15 if b > 15 else b


class PyReduction:
    """kernel_math::Reduction, element by element."""

    def __init__(self):
        self.sum_fixed, self.min_key, self.max_key, self.hist = 0, M32, 0, [0] * HIST_BINS

    def add(self, v):
        s = self.sum_fixed + py_to_fixed(v)
        self.sum_fixed = (s + 2**63) % 2**64 - 2**63  # wrapping_add
        k = py_order_key(v)
        self.min_key, self.max_key = min(self.min_key, k), max(self.max_key, k)
        self.hist[py_hist_bin(v)] += 1


# ---------------------------------------------------------------------------
# NumPy reference: the same formulas on whole arrays, in the same types
# (uint32 arithmetic wraps, float32 operations round to binary32).
# ---------------------------------------------------------------------------

def np_hash32(x):
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def np_produce(first, n, seed, piece=1 << 22):
    """produce(first + i, seed) for i in 0..n, float32 (in pieces, to bound
    the temporaries at 256 MiB of output)."""
    out = np.empty(n, np.float32)
    for lo in range(0, n, piece):
        idx = np.arange(first + lo, first + min(n, lo + piece), dtype=np.uint64)
        hi = np_hash32((idx >> np.uint64(32)).astype(np.uint32) ^ np.uint32(seed))
        h = np_hash32(idx.astype(np.uint32) ^ hi)  # astype truncates to the low 32 bits
        unit = (np.uint32(0x3F800000) | (h >> np.uint32(9))).view(np.float32)
        out[lo:lo + len(idx)] = unit * np.float32(2.0) - np.float32(3.0)
    return out


def np_consume(x):
    return x * np.float32(2.0)


def np_saturating(t, lo, hi, dtype):
    """Rust's `float as iN` on an array (toward zero, saturating, NaN 0)."""
    t = t.astype(np.float64)
    out = np.zeros(t.shape, dtype)
    big, small = t >= float(hi) + 1, t <= float(lo) - 1
    ok = ~(big | small | np.isnan(t))
    out[ok] = np.trunc(t[ok]).astype(dtype)
    out[big], out[small] = hi, lo
    return out


def np_to_fixed(v):
    with np.errstate(over="ignore"):  # v * 2^22 may overflow to infinity: saturates, as in Rust
        return np_saturating(v * np.float32(FIXED_ONE), I64_MIN, I64_MAX, np.int64)


def np_order_key(v):
    b = v.view(np.uint32)
    return np.where((b & np.uint32(0x80000000)) != 0, ~b, b | np.uint32(0x80000000)).astype(np.uint32)


def np_hist_bin(v):
    with np.errstate(over="ignore"):  # overflow to infinity lands in the outer bin, as in Rust
        t = (v + np.float32(4.0)) * np.float32(2.0)
    return np.clip(np_saturating(t, I32_MIN, I32_MAX, np.int64), 0, HIST_BINS - 1)


def np_signed_key(v):
    """What the Triton reduce stores: the order key with its top bit flipped,
    as int32, so that signed atomic min/max order it as the unsigned key
    orders. (Triton picks signed or unsigned atomics from the pointer's type,
    and the records are torch int32 tensors: torch supports few operations
    on uint32.)
    For a float's bits b as int32: b when b >= 0, b ^ 0x7fffffff when b < 0."""
    b = v.view(np.int32)
    return np.where(b < 0, b ^ np.int32(0x7FFFFFFF), b).astype(np.int32)


def key_from_signed(s):
    """The kernel-math order key (uint32) of a stored signed key."""
    return np.asarray(s, np.int32).view(np.uint32) ^ np.uint32(0x80000000)


def np_terms(v):
    """Each element's (to_fixed, order_key, hist_bin)."""
    return np_to_fixed(v), np_order_key(v), np_hist_bin(v)


def np_reduce(v, chunk, terms=None):
    """Per-chunk kernel_math::Reduction records of v (chunks of `chunk`
    elements, the last one possibly shorter): sum_fixed int64, min_key and
    max_key uint32, hist int64 [chunks, 16]. `terms`: np_terms(v), when
    several chunk sizes reduce the same values."""
    n = len(v)
    starts = np.arange(0, n, chunk)
    fixed, keys, bins = terms if terms is not None else np_terms(v)
    chunk_of = np.arange(n, dtype=np.int64) // chunk
    hist = np.bincount(chunk_of * HIST_BINS + bins, minlength=len(starts) * HIST_BINS)
    return {"sum_fixed": np.add.reduceat(fixed, starts), "min_key": np.minimum.reduceat(keys, starts),
            "max_key": np.maximum.reduceat(keys, starts), "hist": hist.reshape(len(starts), HIST_BINS).astype(np.int64)}


# ---------------------------------------------------------------------------
# Self-test (no GPU, no Triton): the NumPy reference against the pure-Python
# one, and both against values computed independently in kernel-math's tests.
# ---------------------------------------------------------------------------

def self_test():
    if np is None:
        print("error: the self-test needs numpy (pip install numpy)")
        return 2
    passed, failed = 0, 0

    def check(what, ok):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
            print("FAIL:", what)

    # Known values from kernel-math/src/lib.rs's tests.
    for x, want in ((0, 0), (1, 0x688990C0), (0xDEADBEEF, 0xE628C683)):
        check(f"py_hash32({x:#x})", py_hash32(x) == want)
        check(f"np_hash32({x:#x})", int(np_hash32(np.array([x], np.uint32))[0]) == want)
    for (i, s), want in (((0, 0), 0xBF800000), ((1, 0), 0xBE3BB380), ((1 << 32, 0), 0xBE9C2AE0), ((12345, 7), 0xBEEC9338)):
        check(f"py_produce({i}, {s})", f32_bits(py_produce(i, s)) == want)
        check(f"np_produce({i}, {s})", int(np_produce(i, 1, s).view(np.uint32)[0]) == want)

    # produce and consume, bit for bit, over runs of indices that cross the
    # 2^32 boundary (the high word's hash) and near the top of u64.
    rng = random.Random(11)
    starts = [0, 12345, 2**31 - 3, 2**32 - 5, 2**40 + 7, 2**64 - 9] + [rng.randrange(2**64 - 64) for _ in range(6)]
    for seed in (0, KERNEL_SEED, PIPELINE_SEED, 0xFFFFFFFF):
        for first in starts:
            n = 8
            got = np_produce(first, n, seed)
            want = [py_produce(first + i, seed) for i in range(n)]
            check(f"np_produce({first}, {n}, {seed:#x})", [int(b) for b in got.view(np.uint32)] == [f32_bits(w) for w in want])
            got_c = np_consume(got)
            check(f"np_consume at {first}", [int(b) for b in got_c.view(np.uint32)] == [f32_bits(py_consume(w)) for w in want])
            check(f"produce range at {first}", all(-1.0 <= w < 1.0 for w in want))

    # The reduce's per-element functions on edge values (signed zeros, bin
    # edges, out of range, infinities, NaN, subnormals, overflow in to_fixed).
    specials = [0.0, -0.0, 1.0, -1.0, 1.5, -1.75, 3.99, -3.99, 4.0, -4.0, 3.75, -3.75, -0.25, 0.2499999,
                100.0, -100.0, 1e-30, -1e-30, 1e-45, -1e-45, 3e38, -3e38, 2.0**41, -2.0**41,
                math.inf, -math.inf, math.nan]
    sv = np.array(specials, np.float32)
    vals = [float(x) for x in sv]  # the binary32 values the arrays hold
    for name, npf, pyf in (("to_fixed", np_to_fixed, py_to_fixed), ("order_key", np_order_key, py_order_key),
                           ("hist_bin", np_hist_bin, py_hist_bin)):
        got = [int(x) for x in npf(sv)]
        want = [pyf(x) for x in vals]
        check(f"np_{name} on edge values: {got} vs {want}", got == want)
    # The kernel's signed keys map back to the order keys and sort the same.
    keys = [int(k) for k in key_from_signed(np_signed_key(sv))]
    check("signed keys map back to order keys", keys == [py_order_key(x) for x in vals])
    order = sorted(range(len(vals)), key=lambda i: py_order_key(vals[i]))
    signed = np_signed_key(sv)
    check("signed keys sort like order keys", [int(signed[i]) for i in order] == sorted(int(s) for s in signed))
    check("EMPTY keys", int(key_from_signed(I32_MAX)) == M32 and int(key_from_signed(I32_MIN)) == 0)

    # Whole records: produced and consumed values plus the edge values, in
    # chunks whose last one is short, against PyReduction element by element.
    v = np.concatenate([np_consume(np_produce(2**32 - 50, 100, PIPELINE_SEED)), sv, np_produce(5, 37, 3)])
    for chunk in (1, 7, 64, len(v), len(v) + 5):
        rec = np_reduce(v, chunk)
        ok = len(rec["sum_fixed"]) == math.ceil(len(v) / chunk)
        for c in range(len(rec["sum_fixed"])):
            r = PyReduction()
            for x in v[c * chunk:(c + 1) * chunk]:
                r.add(float(x))
            ok &= (int(rec["sum_fixed"][c]), int(rec["min_key"][c]), int(rec["max_key"][c]), [int(h) for h in rec["hist"][c]]) == \
                (r.sum_fixed, r.min_key, r.max_key, r.hist)
        check(f"np_reduce records, chunks of {chunk}", ok)
    # Multiples of 2^-22 sum exactly in fixed point.
    w = np_consume(np_produce(0, 1000, 9))
    check("fixed-point sum is exact", int(np_reduce(w, 1000)["sum_fixed"][0]) == sum(int(x * 2**22) for x in w.astype(np.float64)))

    print(f"self-test: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


# ---------------------------------------------------------------------------
# The Triton kernels. Defined only where triton imports (the self-test runs
# without it).
# ---------------------------------------------------------------------------

if triton is not None:

    @triton.jit
    def hash32(x):
        # x is uint32: `*` wraps modulo 2^32 and `>>` is a logical shift on
        # unsigned types; the constants promote to uint32 with it.
        x = x ^ (x >> 16)
        x = x * 0x7FEB352D
        x = x ^ (x >> 15)
        x = x * 0x846CA68B
        x = x ^ (x >> 16)
        return x

    @triton.jit
    def produce(index, seed):
        # index: int64, non-negative. `.to(tl.uint32)` truncates to the low word.
        hi = hash32((index >> 32).to(tl.uint32) ^ seed)
        h = hash32(index.to(tl.uint32) ^ hi)
        unit = ((h >> 9) | 0x3F800000).to(tl.float32, bitcast=True)
        # unit * 2 is exact and so is the difference (a multiple of 2^-22 in
        # [-1, 1)): contracting it into an FMA cannot change the result.
        return unit * 2.0 - 3.0

    @triton.jit
    def consume(x):
        return x * 2.0

    # One program per BLOCK elements (Triton's own shape; no grid-stride
    # loop). Offsets are int32: n < 2^31. `first` and `rec` change per chunk
    # in the pipeline: not specialized, so one compiled variant serves all.
    @triton.jit(do_not_specialize=["first"])
    def producer_kernel(out_ptr, n, first, seed, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        v = produce(first + offs.to(tl.int64), seed)
        tl.store(out_ptr + offs, v, mask=offs < n)

    @triton.jit
    def consumer_kernel(in_ptr, out_ptr, n, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        tl.store(out_ptr + offs, consume(tl.load(in_ptr + offs, mask=mask)), mask=mask)

    @triton.jit(do_not_specialize=["first"])
    def fused_kernel(out_ptr, n, first, seed, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        v = consume(produce(first + offs.to(tl.int64), seed))
        tl.store(out_ptr + offs, v, mask=offs < n)

    @triton.jit(do_not_specialize=["rec"])
    def reduce_kernel(in_ptr, n, sum_ptr, key_ptr, hist_ptr, rec, BLOCK: tl.constexpr):
        """Adds in_ptr[0..n] into record `rec`: sum_ptr[rec] (int64, 2^-22
        fixed point), key_ptr[2 rec], key_ptr[2 rec + 1] (int32 signed keys,
        min and max, see np_signed_key), hist_ptr[16 rec ..] (int32). The
        record must start EMPTY (0, INT32_MAX, INT32_MIN, zeros). Like the
        Rust reduce_kernel: each program reduces a grid-stride share into
        registers, then adds its partial record with atomics, so the record
        is the same in any order."""
        pid = tl.program_id(0)
        step = tl.num_programs(0) * BLOCK
        acc_sum = tl.zeros([BLOCK], dtype=tl.int64)
        acc_min = tl.full([BLOCK], 2147483647, tl.int32)
        acc_max = tl.full([BLOCK], -2147483648, tl.int32)
        # 32 bins: lanes past the end count in bin 16, which is never added.
        acc_hist = tl.zeros([32], dtype=tl.int32)
        for start in range(pid * BLOCK, n, step):
            offs = start + tl.arange(0, BLOCK)
            mask = offs < n
            v = tl.load(in_ptr + offs, mask=mask, other=0.0)
            # to_fixed: v * 2^22 (exact for the pipeline's values), toward zero.
            acc_sum += tl.where(mask, (v * 4194304.0).to(tl.int64), 0)
            bits = v.to(tl.int32, bitcast=True)
            key = tl.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
            acc_min = tl.minimum(acc_min, tl.where(mask, key, 2147483647))
            acc_max = tl.maximum(acc_max, tl.where(mask, key, -2147483648))
            # hist_bin: (v + 4) * 2 toward zero, clamped to 0..15.
            b = ((v + 4.0) * 2.0).to(tl.int32)
            b = tl.minimum(tl.maximum(b, 0), 15)
            acc_hist += tl.histogram(tl.where(mask, b, 16), 32)
        # Relaxed, as in the Rust kernel: the record is read after the kernel ends.
        tl.atomic_add(sum_ptr + rec, tl.sum(acc_sum, axis=0), sem="relaxed")
        tl.atomic_min(key_ptr + 2 * rec, tl.min(acc_min, axis=0), sem="relaxed")
        tl.atomic_max(key_ptr + 2 * rec + 1, tl.max(acc_max, axis=0), sem="relaxed")
        bins = tl.arange(0, 32)
        tl.atomic_add(hist_ptr + 16 * rec + bins, acc_hist, mask=bins < 16, sem="relaxed")


# ---------------------------------------------------------------------------
# Launch helpers and checks (GPU, or the CPU under the interpreter).
# ---------------------------------------------------------------------------

def cdiv(a, b):
    return (a + b - 1) // b


class Kernels:
    """Launches on torch's current stream (Triton launches there)."""

    def __init__(self, sms):
        self.sms = sms

    def producer(self, out, n, first, seed):
        producer_kernel[(cdiv(n, BLOCK),)](out, n, first, seed, BLOCK=BLOCK, num_warps=4)

    def consumer(self, inp, out, n):
        consumer_kernel[(cdiv(n, BLOCK),)](inp, out, n, BLOCK=BLOCK, num_warps=4)

    def fused(self, out, n, first, seed):
        fused_kernel[(cdiv(n, BLOCK),)](out, n, first, seed, BLOCK=BLOCK, num_warps=4)

    def reduce_grid(self, n):
        return (max(1, min(cdiv(n, RBLOCK), self.sms * RPROGRAMS_PER_SM)),)

    def reduce(self, inp, n, recs, rec):
        reduce_kernel[self.reduce_grid(n)](inp, n, recs.sums, recs.keys, recs.hist, rec, BLOCK=RBLOCK, num_warps=8)


class Records:
    """Per-chunk reduce records on the device, in the layout reduce_kernel
    writes, and their reset to EMPTY (stream-ordered: capturable)."""

    def __init__(self, count, device):
        self.sums = torch.zeros(count, dtype=torch.int64, device=device)
        self.keys = torch.zeros((count, 2), dtype=torch.int32, device=device)
        self.hist = torch.zeros((count, HIST_BINS), dtype=torch.int32, device=device)
        self.reset()

    def reset(self):
        self.sums.zero_()
        self.keys[:, 0].fill_(I32_MAX)
        self.keys[:, 1].fill_(I32_MIN)
        self.hist.zero_()

    def host(self):
        """As np_reduce returns them (uint32 order keys)."""
        keys = self.keys.cpu().numpy()
        return {"sum_fixed": self.sums.cpu().numpy().astype(np.int64), "min_key": key_from_signed(keys[:, 0]),
                "max_key": key_from_signed(keys[:, 1]), "hist": self.hist.cpu().numpy().astype(np.int64)}


def compare_records(label, got, want, first_chunk=0):
    """Number of chunks whose record differs (the first few printed)."""
    bad = np.zeros(len(want["sum_fixed"]), bool)
    for k in ("sum_fixed", "min_key", "max_key"):
        bad |= got[k][first_chunk:first_chunk + len(bad)] != want[k]
    bad |= (got["hist"][first_chunk:first_chunk + len(bad)] != want["hist"]).any(axis=1)
    for c in np.flatnonzero(bad)[:3]:
        g = {k: got[k][first_chunk + c].tolist() for k in got}
        w = {k: want[k][c].tolist() for k in want}
        print(f"MISMATCH {label}: chunk {c}: got {g}, want {w}", file=sys.stderr)
    return int(bad.sum())


def compare_bits(label, got_tensor, want):
    """Number of elements whose bits differ (the first few printed)."""
    got = got_tensor.cpu().numpy().view(np.uint32)
    bad = np.flatnonzero(got != want.view(np.uint32))
    for i in bad[:3]:
        print(f"MISMATCH {label}: element {i}: got {got[i]:#010x}, want {want.view(np.uint32)[i]:#010x}", file=sys.stderr)
    return len(bad)


class Checker:
    """Counts failed checks; each failure is printed and kept as an error."""

    def __init__(self):
        self.errors = []

    def ok(self, label, mismatches):
        if mismatches:
            self.errors.append(f"triton: {label}: {mismatches} mismatches")
            print(f"error: {label}: {mismatches} mismatches", file=sys.stderr)
        return mismatches == 0


def edge_checks(k, device, chk):
    """Correctness only: odd sizes (masked tails), indices across 2^32 (the
    high word's hash, int64 `first`), a record index past 0 with its
    neighbours left EMPTY."""
    first, n = 2**32 - 1000, 3 * BLOCK + 5
    buf = torch.empty(n, dtype=torch.float32, device=device)
    out = torch.empty(n, dtype=torch.float32, device=device)
    want = np_produce(first, n, KERNEL_SEED)
    k.producer(buf, n, first, KERNEL_SEED)
    chk.ok("producer across 2^32, odd size", compare_bits("producer edge", buf, want))
    k.consumer(buf, out, n)
    chk.ok("consumer, odd size", compare_bits("consumer edge", out, np_consume(buf.cpu().numpy())))
    out.fill_(float("nan"))
    k.fused(out, n, first, KERNEL_SEED)
    chk.ok("fused across 2^32, odd size", compare_bits("fused edge", out, np_consume(want)))
    recs = Records(3, device)
    k.reduce(out, n, recs, 1)
    got = recs.host()
    empty = {"sum_fixed": np.array([0]), "min_key": np.array([M32], np.uint32), "max_key": np.array([0], np.uint32),
             "hist": np.zeros((1, HIST_BINS), np.int64)}
    bad = compare_records("reduce edge", got, np_reduce(out.cpu().numpy(), n), first_chunk=1)
    bad += compare_records("reduce edge (record 0 untouched)", got, empty, 0)
    bad += compare_records("reduce edge (record 2 untouched)", got, empty, 2)
    chk.ok("reduce, odd size, record 1", bad)
    # The reduce on finite edge values the pipeline never makes: signed
    # zeros, bin edges, values past both outer bins (the clamp).
    sv = np.array([0.0, -0.0, 1e-30, -1e-30, 1.5, -1.75, 3.99, -3.99, 4.0, -4.0, 3.75, -3.75, 100.0, -100.0, 7e5, -7e5], np.float32)
    recs = Records(1, device)
    k.reduce(torch.from_numpy(sv).to(device), len(sv), recs, 0)
    chk.ok("reduce, edge values", compare_records("reduce edge values", recs.host(), np_reduce(sv, len(sv))))


class GeneratePipeline:
    """producer -> consumer -> reduce over `total` bytes in chunks of
    `chunk` bytes, all on the current stream (in order, so one producer and
    one consumer buffer serve every chunk), records checked per chunk."""

    def __init__(self, k, total, chunk, device, values, terms=None):
        self.k, self.n, self.ce = k, total // 4, chunk // 4
        self.chunks = [(c, c * self.ce, min(self.ce, self.n - c * self.ce)) for c in range(cdiv(self.n, self.ce))]
        self.ring_p = torch.empty(self.ce, dtype=torch.float32, device=device)
        self.ring_c = torch.empty(self.ce, dtype=torch.float32, device=device)
        self.recs = Records(len(self.chunks), device)
        self.want = np_reduce(values[:self.n], self.ce, terms)

    def launch(self):
        k, p, cbuf, recs = self.k, self.ring_p, self.ring_c, self.recs
        recs.reset()
        for c, lo, m in self.chunks:
            k.producer(p, m, lo, PIPELINE_SEED)
            k.consumer(p, cbuf, m)
            k.reduce(cbuf, m, recs, c)

    def check(self, label):
        return compare_records(label, self.recs.host(), self.want)


def interpret_main():
    """The kernels under Triton's interpreter on the CPU: small sizes, every
    result checked; no timings."""
    if triton is None or np is None:
        print(f"error: --interpret needs numpy, torch and triton ({IMPORT_ERROR})")
        return 2
    chk = Checker()
    k = Kernels(sms=2)
    edge_checks(k, "cpu", chk)
    values = np_consume(np_produce(0, 64 * 1024 // 4, PIPELINE_SEED))
    for chunk in (4096, 16384, 65536):
        p = GeneratePipeline(k, 64 * 1024, chunk, "cpu", values)
        p.launch()
        chk.ok(f"pipeline, chunk {chunk}", p.check(f"pipeline chunk {chunk}"))
    print(f"interpret: {len(chk.errors)} failed checks")
    return 0 if not chk.errors else 1


# ---------------------------------------------------------------------------
# GPU measurements.
# ---------------------------------------------------------------------------

def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def batch_for(size):
    return max(1, min((64 * MiB) // max(size, 1), 1024))  # the same rule as host bench


def timed(stream, fn, size, reps):
    """Median per-launch ms of `fn` on `stream`, batched like host bench."""
    batch = batch_for(size)
    with torch.cuda.stream(stream):
        fn()
        stream.synchronize()
        ts = []
        for _ in range(reps):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record(stream)
            for _ in range(batch):
                fn()
            b.record(stream)
            b.synchronize()
            ts.append(a.elapsed_time(b) / batch)
    return median(ts)


def timed_graph(stream, fn, size, reps):
    """The same batch captured once in a CUDA graph and replayed: the GPU's
    time without Python's launch path."""
    batch = batch_for(size)
    g = torch.cuda.CUDAGraph()
    torch.cuda.synchronize()
    with torch.cuda.graph(g):
        for _ in range(batch):
            fn()
    with torch.cuda.stream(stream):
        g.replay()
        stream.synchronize()
        ts = []
        for _ in range(reps):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record(stream)
            g.replay()
            b.record(stream)
            b.synchronize()
            ts.append(a.elapsed_time(b) / batch)
    del g
    return median(ts)


def kernel_rows(k, large, small, reps, chk):
    # torch's streams do not wait for the default stream, where the buffers
    # are made and filled: each such step below ends with a synchronize.
    rows = []
    s, s2 = torch.cuda.Stream(), torch.cuda.Stream()

    def add(name, size, moved, ms, note):
        rows.append({"group": "handoff" if "event" in name else "kernel", "name": name, "size_bytes": size,
                     "bytes_moved": moved, "ms": ms, "gbps": moved / (ms * 1e-3) / 1e9, "impl": "triton", "note": note})

    for size in (large, small):
        n = size // 4
        buf = torch.empty(n, dtype=torch.float32, device=DEVICE)
        out = torch.empty(n, dtype=torch.float32, device=DEVICE)
        recs = Records(1, DEVICE)
        want = np_produce(0, n, KERNEL_SEED)
        want_c = np_consume(want)
        tag = f"triton, {BLOCK} per program"
        rtag = f"triton, grid-stride, {RBLOCK} per trip"
        note = f"grid {cdiv(n, BLOCK)}, 4 warps"
        rnote = f"grid {k.reduce_grid(n)[0]}, 8 warps"
        torch.cuda.synchronize()
        kernels = [
            ("producer", 4 * n, lambda: k.producer(buf, n, 0, KERNEL_SEED), note, tag,
             lambda: compare_bits(f"producer {size}", buf, want)),
            # The consumer and the reduce checked against their actual input,
            # so a wrong producer fails the producer's row only.
            ("consumer", 8 * n, lambda: k.consumer(buf, out, n), note, tag,
             lambda: compare_bits(f"consumer {size}", out, np_consume(buf.cpu().numpy()))),
            ("fused producer+consumer", 4 * n, lambda: k.fused(out, n, 0, KERNEL_SEED), note, tag,
             lambda: compare_bits(f"fused {size}", out, want_c)),
            ("reduce: sum, min, max, 16-bin histogram", 4 * n, lambda: k.reduce(out, n, recs, 0), rnote, rtag, None),
        ]
        for name, moved, fn, note_k, tag_k, check in kernels:
            if name == "fused producer+consumer":
                out.fill_(float("nan"))  # so the check sees the fused kernel's own output
                torch.cuda.synchronize()
            try:
                ms = timed(s, fn, size, reps)
                torch.cuda.synchronize()
                if check is not None:
                    bad = check()
                else:  # the reduce accumulated over every timed launch: one clean launch to check
                    recs.reset()
                    fn()
                    torch.cuda.synchronize()
                    bad = compare_records(f"reduce {size}", recs.host(), np_reduce(out.cpu().numpy(), n))
                if chk.ok(f"{name} at {size} bytes", bad):
                    add(f"{name} ({tag_k})", size, moved, ms, note_k + ", Python launches")
                    # Graph replay of the batch at the small size, where Python's
                    # launch path can be longer than the kernel.
                    if size == small:
                        gms = timed_graph(s, fn, size, reps)
                        add(f"{name} ({tag_k}, graph-replayed batch)", size, moved, gms, note_k)
            except Exception as e:  # noqa: BLE001 - reported, and the exit status says so
                chk.errors.append(f"triton: {name} at {size} bytes: {e}")
                print(f"error: triton {name} at {size} bytes: {e}", file=sys.stderr)

        # The seed's hand-off: producer on A, event, consumer on B waiting,
        # event back. Events made once, as the nvcc peer does.
        produced, consumed = torch.cuda.Event(), torch.cuda.Event()

        def handoff():
            with torch.cuda.stream(s):
                k.producer(buf, n, 0, KERNEL_SEED)
                produced.record(s)
            s2.wait_event(produced)
            with torch.cuda.stream(s2):
                k.consumer(buf, out, n)
                consumed.record(s2)
            s.wait_event(consumed)

        try:
            out.fill_(float("nan"))
            torch.cuda.synchronize()
            ms = timed(s, handoff, size, reps)
            torch.cuda.synchronize()
            if chk.ok(f"hand-off at {size} bytes", compare_bits(f"hand-off {size}", out, want_c)):
                add("producer -> event -> consumer (two streams)", size, 12 * n, ms, "triton kernels, Python launches")
        except Exception as e:  # noqa: BLE001
            chk.errors.append(f"triton: hand-off at {size} bytes: {e}")
            print(f"error: triton hand-off at {size} bytes: {e}", file=sys.stderr)
        del buf, out
        torch.cuda.empty_cache()
    return rows


def pipeline_rows(k, total, chunks, use_graph, runs, chk):
    pipes = []
    s = torch.cuda.Stream()
    values = np_consume(np_produce(0, total // 4, PIPELINE_SEED))  # what every chunk's reduce sees
    terms = np_terms(values)
    for chunk in chunks:
        try:
            p = GeneratePipeline(k, total, chunk, DEVICE, values, terms)
            torch.cuda.synchronize()  # its records were made on the default stream; it runs on s
        except Exception as e:  # noqa: BLE001
            chk.errors.append(f"triton: pipeline chunk {chunk}: {e}")
            print(f"error: triton pipeline chunk {chunk}: {e}", file=sys.stderr)
            continue
        modes = [("triton one stream (3 launches per chunk)", False)]
        if use_graph:
            modes.append(("triton graph replay (one stream)", True))
        for mode, graph in modes:
            try:
                with torch.cuda.stream(s):
                    p.launch()  # warm-up: every kernel variant compiled before any capture
                    s.synchronize()
                    bad = p.check(f"{mode}, chunk {chunk}, warm-up")
                    if graph:
                        g = torch.cuda.CUDAGraph()
                        with torch.cuda.graph(g):
                            p.launch()
                        g.replay()
                        s.synchronize()
                        bad += p.check(f"{mode}, chunk {chunk}, first replay")
                    ts = []
                    for r in range(runs):
                        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                        a.record(s)
                        if graph:
                            g.replay()
                        else:
                            p.launch()
                        b.record(s)
                        b.synchronize()
                        ts.append(a.elapsed_time(b))
                        bad += p.check(f"{mode}, chunk {chunk}, run {r}")  # every run's records, every chunk
                    if graph:
                        del g
                ms = median(ts)
                ok = chk.ok(f"pipeline {mode}, chunk {chunk}", bad)
                gbps = total / (ms * 1e-3) / 1e9
                print(f"triton   generate chunk {chunk:>10} {mode:<42} {ms:9.3f} ms {gbps:8.1f} GB/s"
                      f"  {'verified' if ok else 'VERIFICATION FAILED'}")
                if ok:
                    pipes.append({"workload": "generate", "chunk_bytes": chunk, "mode": mode, "ms": ms, "gbps": gbps,
                                  "verified": True, "impl": "triton", "chunks": len(p.chunks)})
            except Exception as e:  # noqa: BLE001
                chk.errors.append(f"triton: pipeline {mode}, chunk {chunk}: {e}")
                print(f"error: triton pipeline {mode}, chunk {chunk}: {e}", file=sys.stderr)
        del p
        torch.cuda.empty_cache()
    return pipes


def merge_into(path, result):
    """Appends this peer's rows, pipelines and errors to run_peers.py's JSON."""
    try:
        peers = json.load(open(path))
    except FileNotFoundError:
        peers = {"rows": [], "pipelines": [], "errors": []}
    for key in ("rows", "pipelines", "errors"):
        peers.setdefault(key, [])
        # A rerun replaces this peer's earlier figures and errors.
        peers[key] = [x for x in peers[key] if not (isinstance(x, dict) and x.get("impl") == "triton")
                      and not (isinstance(x, str) and x.startswith("triton:"))]
        peers[key] += result[key]
    peers["triton"] = {"version": result["triton"], "torch": result["torch"], "device": result["device"]}
    json.dump(peers, open(path, "w"), indent=1)


def gpu_main(a):
    if triton is None:
        why = (str(IMPORT_ERROR).splitlines() or [type(IMPORT_ERROR).__name__])[0]
        print(f"error: the Triton peer needs triton and torch, which do not import here: {why}")
        return 2
    if np is None:
        print("error: the Triton peer needs numpy")
        return 2
    if not torch.cuda.is_available():
        print("error: the Triton peer needs a CUDA device, and torch sees none")
        return 2
    chunks = [int(c) for c in a.chunks.split(",")]
    if any(c % 4 or c <= 0 for c in chunks + [a.large, a.small, a.total]):
        print("error: sizes must be positive multiples of 4 bytes")
        return 2
    dev = torch.cuda.get_device_properties(0)
    print(f"triton {triton.__version__}, torch {torch.__version__}, {dev.name} ({dev.multi_processor_count} SMs)")
    chk = Checker()
    k = Kernels(dev.multi_processor_count)
    rows, pipes = [], []
    try:
        edge_checks(k, DEVICE, chk)
        torch.cuda.synchronize()
    except Exception as e:  # noqa: BLE001
        chk.errors.append(f"triton: edge checks: {e}")
        print(f"error: triton edge checks: {e}", file=sys.stderr)
    rows += kernel_rows(k, a.large, a.small, a.reps, chk)
    for x in rows:
        print("%-8s %-64s %10d %10.4f ms %8.1f GB/s" % (x["impl"], x["name"], x["size_bytes"], x["ms"], x["gbps"]))
    pipes += pipeline_rows(k, a.total, chunks, not a.no_graph, a.runs, chk)
    result = {"device": dev.name, "triton": triton.__version__, "torch": torch.__version__,
              "rows": rows, "pipelines": pipes, "errors": chk.errors}
    json.dump(result, open(a.out, "w"), indent=1)
    if a.merge_into:
        merge_into(a.merge_into, result)
    print(f"triton peer: {len(rows)} kernel rows, {len(pipes)} pipeline rows, {len(chk.errors)} errors; wrote {a.out}"
          + (f", merged into {a.merge_into}" if a.merge_into else ""))
    return 1 if chk.errors else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", help="JSON file to write (the GPU run)")
    ap.add_argument("--self-test", action="store_true", help="check the NumPy reference against pure Python (no GPU)")
    ap.add_argument("--interpret", action="store_true", help="run the kernels' checks under Triton's interpreter (no GPU)")
    ap.add_argument("--merge-into", help="also append the results to this peers JSON (run_peers.py's)")
    ap.add_argument("--large", type=int, default=256 * MiB)
    ap.add_argument("--small", type=int, default=4 * MiB)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--total", type=int, default=256 * MiB)
    ap.add_argument("--chunks", default="16384,65536,262144,1048576,4194304")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per pipeline row (median)")
    ap.add_argument("--no-graph", action="store_true", help="skip the CUDA-graph pipeline rows")
    a = ap.parse_args()
    if a.self_test:
        return self_test()
    if a.interpret:
        return interpret_main()
    if not a.out:
        ap.error("OUT.json is needed (or --self-test / --interpret)")
    return gpu_main(a)


if __name__ == "__main__":
    sys.exit(main())
