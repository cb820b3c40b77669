/* adapters/adapter.c: being written */ typedef int hp_stub_adapter_t;
