"""Measuring models: params, MACs, FLOPs, latency, and training throughput benchmarks."""
