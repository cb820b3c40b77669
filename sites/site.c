/* sites/site.c: being written */ typedef int hp_stub_site_t;
