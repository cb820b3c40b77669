/* badabi.c - a plugin built for another ABI: its descriptor says
 * HPCPORT_ADAPTER_ABI + 1, as a plugin built against a newer hpcport's
 * headers would. hpcport must refuse it and name the file. */
#include "hpcport-adapter.h"

static int badabi_render(const struct hp_jobspec *spec, const struct hp_site *site,
                         struct hp_buf *out, struct hp_err *err)
{
    (void)spec, (void)site, (void)err;
    hp_buf_adds(out, "#!/bin/sh\n");
    return 0;
}

static const struct hp_adapter_ops ops = { .name = "badabi", .render = badabi_render };

HPCPORT_ADAPTER_EXPORT extern const struct hpcport_adapter hpcport_adapter;
const struct hpcport_adapter hpcport_adapter = {
    .abi = HPCPORT_ADAPTER_ABI + 1,
    .size = sizeof(struct hpcport_adapter),
    .name = "badabi",
    .ops = &ops,
};
