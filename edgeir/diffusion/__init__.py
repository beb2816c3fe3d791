"""Noise schedules and sampler step maths. numpy only: the torch sampler, the exported graph and the
torch-free runtime all share these functions."""
