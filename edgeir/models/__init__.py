"""Networks and the one denoiser interface every network is adapted to."""
