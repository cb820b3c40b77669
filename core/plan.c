/* core/plan.c: being written */ typedef int hp_stub_plan_t;
