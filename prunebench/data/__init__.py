"""Data stage: datasets -> splits -> batches (imagenet streams)."""
