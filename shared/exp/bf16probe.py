import time, torch, sys
from spikeconv.models import build_model
from spikeconv.tasks.checkpoint import build_from_spec
from spikeconv.cli.config import load_run_config
spec = load_run_config("configs/cifar10_fast.toml").spec
m = build_from_spec(spec).to(memory_format=torch.channels_last)
opt = torch.optim.SGD(m.parameters(), lr=0.01)
x = torch.randn(1024,3,32,32).contiguous(memory_format=torch.channels_last); y=torch.randint(0,10,(1024,))
for bf16, cl in ((False, True), (False, False), (True, True)):
    xx = x if cl else x.contiguous()
    mm = m.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
    for i in range(3):
        t=time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = mm(xx)
        loss = torch.nn.functional.cross_entropy(out.float(), y); opt.zero_grad(); loss.backward(); opt.step()
        print(f"bf16={bf16} channels_last={cl} step {i}: {time.perf_counter()-t:.2f}s", flush=True)
        if time.perf_counter()-t > 30: break
