# NCCL's own send/recv ceiling between two GPUs, two processes (PyTorch's NCCL):
# python3 nccl_sendrecv.py [NCCL_VAR=value ...] prints GB/s at 16, 64 and 256 MiB.
import os, sys, time, torch, torch.distributed as dist, torch.multiprocessing as mp

def worker(rank, sizes, iters, env):
    os.environ.update(env)
    os.environ["MASTER_ADDR"] = "127.0.0.1"; os.environ["MASTER_PORT"] = "29511"
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=2, device_id=torch.device("cuda", rank))
    for size in sizes:
        buf = torch.empty(size, dtype=torch.uint8, device="cuda")
        def once():
            if rank == 0: dist.send(buf, 1)
            else: dist.recv(buf, 0)
        for _ in range(5): once()
        torch.cuda.synchronize(); dist.barrier()
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(iters): once()
        e.record(); torch.cuda.synchronize()
        ms = s.elapsed_time(e)
        if rank == 1:
            print(f"torch {torch.__version__} nccl {torch.cuda.nccl.version()} env {env or '{}'}: send/recv {size/2**20:.0f} MiB x {iters}: {size*iters/ms/1e6:.1f} GB/s", flush=True)
    dist.destroy_process_group()

if __name__ == "__main__":
    env = dict(kv.split("=", 1) for kv in sys.argv[1:])
    mp.spawn(worker, args=([16 << 20, 64 << 20, 256 << 20], 40, env), nprocs=2)
