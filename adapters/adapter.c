/* adapter.c - the registry of built-in adapters (plugins: plugin.c) and the job
 * state names. */
#include <string.h>
#include "adapter.h"
#include "plugin.h"
#include "banned.h"

extern const struct hp_adapter_ops hp_adapter_local;
extern const struct hp_adapter_ops hp_adapter_slurm;
extern const struct hp_adapter_ops hp_adapter_pbs;
extern const struct hp_adapter_ops hp_adapter_slurmrest;
/* Further built-ins (pbs, ...) are declared here and listed below. */

static const struct hp_adapter_ops *const builtins[] = {
    &hp_adapter_local,
    &hp_adapter_slurm,
    &hp_adapter_pbs,
    &hp_adapter_slurmrest,
    NULL,
};

const struct hp_adapter_ops *hp_adapter_find(const char *name)
{
    for (size_t i = 0; name && builtins[i]; i++)
        if (!strcmp(builtins[i]->name, name))
            return builtins[i];
    return name ? hp_plugin_find(name, NULL) : NULL;
}

const struct hp_adapter_ops *hp_adapter_find_recorded(const char *name)
{
    if (name && !strcmp(name, hp_adapter_endpoint.name))
        return &hp_adapter_endpoint;
    if (name && !strcmp(name, hp_adapter_pilot.name))
        return &hp_adapter_pilot;
    return hp_adapter_find(name);
}

const struct hp_adapter_ops *const *hp_adapter_list(void)
{
    return builtins;
}

const char *hp_jobstate_name(enum hp_jobstate_kind k)
{
    static const char *const names[] = {
        [HP_JOB_NEW] = "new",
        [HP_JOB_QUEUED] = "queued",
        [HP_JOB_ACTIVE] = "active",
        [HP_JOB_COMPLETED] = "completed",
        [HP_JOB_FAILED] = "failed",
        [HP_JOB_CANCELED] = "canceled",
        [HP_JOB_UNKNOWN] = "unknown",
    };
    return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "?";
}
