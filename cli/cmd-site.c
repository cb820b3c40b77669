#include "cli.h"
int cmd_site(int argc, char **argv) { (void)argc; (void)argv; return hp_cli_fail(1, "not yet"); }
