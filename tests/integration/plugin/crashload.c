/* crashload.c - a plugin that crashes while it loads: its constructor
 * dereferences a null pointer, as a broken plugin's initialisation may. */
#include <signal.h>
#include "hpcport-adapter.h"

static int crashload_render(const struct hp_jobspec *spec, const struct hp_site *site,
                            struct hp_buf *out, struct hp_err *err)
{
    (void)spec, (void)site, (void)out, (void)err;
    return 0;
}

__attribute__((constructor)) static void crash(void)
{
    raise(SIGSEGV);
}

static const struct hp_adapter_ops ops = { .name = "crashload", .render = crashload_render };

HPCPORT_ADAPTER("crashload", &ops, NULL, NULL);
