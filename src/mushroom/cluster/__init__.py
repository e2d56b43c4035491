"""Running beyond one machine: SLURM's time limits and requeues."""
