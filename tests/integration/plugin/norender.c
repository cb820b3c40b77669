/* norender.c - a plugin whose ops lack the one required hook, render. */
#include "hpcport-adapter.h"

static int norender_cancel(void *impl, const char *id, struct hp_err *err)
{
    (void)impl, (void)id, (void)err;
    return 0;
}

static const struct hp_adapter_ops ops = { .name = "norender", .cancel = norender_cancel };

HPCPORT_ADAPTER("norender", &ops, NULL, NULL);
