/* undefsym.c - a plugin that calls a function hpcport does not have (as one
 * built against a newer hpcport would): dlopen(RTLD_NOW) fails. */
#include "hpcport-adapter.h"

void hp_function_from_the_future(struct hp_buf *out);

static int undefsym_render(const struct hp_jobspec *spec, const struct hp_site *site,
                           struct hp_buf *out, struct hp_err *err)
{
    (void)spec, (void)site, (void)err;
    hp_function_from_the_future(out);
    return 0;
}

static const struct hp_adapter_ops ops = { .name = "undefsym", .render = undefsym_render };

HPCPORT_ADAPTER("undefsym", &ops, NULL, NULL);
