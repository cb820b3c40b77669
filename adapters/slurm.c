/* adapters/slurm.c: being written */ typedef int hp_stub_slurm_t;
