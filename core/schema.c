typedef int hp_stub_schema_t;
