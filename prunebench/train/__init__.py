"""Training: the SGD loop and the dense stage every run of a (model, seed) shares."""
