/* core/state.c: being written */ typedef int hp_stub_state_t;
