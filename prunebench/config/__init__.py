"""Configuration: a run's config, a study's config, and their validation."""
