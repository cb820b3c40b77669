/* exitload.c - a plugin whose constructor ends the process that loads it. */
#include <stdlib.h>
#include "hpcport-adapter.h"

static int exitload_render(const struct hp_jobspec *spec, const struct hp_site *site,
                           struct hp_buf *out, struct hp_err *err)
{
    (void)spec, (void)site, (void)out, (void)err;
    return 0;
}

__attribute__((constructor)) static void leave(void)
{
    exit(42);
}

static const struct hp_adapter_ops ops = { .name = "exitload", .render = exitload_render };

HPCPORT_ADAPTER("exitload", &ops, NULL, NULL);
