"""graphc's benchmark suite: graphc against a hand-written reference and the peers, one process.

Run everything with `.venv/bin/python -m benchmarks` from the repository root (see
`docs/performance.md` and `python -m benchmarks --help`). Workloads, one module each:

- `scalar`: value and gradients of the lecture circuits on Python floats;
- `mlp`: the CIFAR-sized 2-layer net, float64 and float32, plus peak memory per candidate;
- `overhead`: the same net at N=8, where per-call costs count: a Function above its module,
  fused against unfused, with one-hot and integer labels;
- `elementwise`: the sigmoid neuron over 10^6-element arrays, fused and unfused;
- `compile_scaling`: the unrolled recurrence h = tanh(w*h + u*x_t + b), T = 100 ... 20,000.

Every workload times its candidates in interleaved rounds (each candidate once per round, the
starting candidate rotating) and reports medians and ratios to its reference, because on a
shared machine only ratios from one run mean anything. Peers (PyTorch, JAX, HIPS autograd,
micrograd, PyTensor; `pip install -e '.[bench]'`) are measured when installed and skipped
otherwise. `--smoke` runs tiny sizes and checks correctness only.
"""
