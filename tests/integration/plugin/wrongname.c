/* wrongname.c - built as wrongname.so, but it defines adapter "other". */
#include "hpcport-adapter.h"

static int other_render(const struct hp_jobspec *spec, const struct hp_site *site,
                        struct hp_buf *out, struct hp_err *err)
{
    (void)spec, (void)site, (void)err;
    hp_buf_adds(out, "#!/bin/sh\n");
    return 0;
}

static const struct hp_adapter_ops ops = { .name = "other", .render = other_render };

HPCPORT_ADAPTER("other", &ops, NULL, NULL);
