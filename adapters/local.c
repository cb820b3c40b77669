/* adapters/local.c: being written */ typedef int hp_stub_local_t;
