/* hpcport-adapter.h - what an external adapter plugin is built against.
 *
 * An adapter plugin is a shared object NAME.so that drives sites whose
 * profile says `scheduler: {type: NAME}` (NAME: [a-z][a-z0-9_-]*). hpcport
 * looks for it, first match wins, in
 *   1. each directory of $HPCPORT_PLUGIN_PATH (colon separated),
 *   2. $XDG_DATA_HOME/hpcport/adapters (~/.local/share/hpcport/adapters),
 *   3. the installed plugin directory (pkg-config --variable=plugindir
 *      hpcport-adapter; <libdir>/hpcport/adapters unless configured),
 * loads it with dlopen(RTLD_NOW | RTLD_LOCAL) when a plan first needs NAME
 * (built-in adapters win over plugins of the same name), and keeps it loaded
 * for the life of the process. `hpcport adapters` lists every adapter found,
 * and every plugin that was refused, with the reason.
 *
 * What a plugin sees. The design choice is "one interface for built-in and
 * external adapters": a plugin fills the same struct hp_adapter_ops as the
 * built-in local and slurm adapters (adapter.h; read the contract of each hook
 * there: render is required and pure, the others optional), receives the
 * same job specs, site views and plans, and may call hpcport's own helpers,
 * which the hpcport executable exports to the plugins it loads:
 *   buf.h     hp_buf_*: the buffer render appends the script to
 *   err.h     hp_err_*: how a hook says what went wrong
 *   quote.h   hp_sq_quote: quote every user value put into a shell script
 *   script.h  hp_script_*: the job body every adapter shares (environment,
 *             cd, container runtime, launcher, redirections)
 *   conn.h    hp_conn_*: run commands on the site, locally or over SSH
 *   stage.h   hp_stage_*: the campaign's directories, inputs and outputs
 *   site.h, plan.h, workflow.h, util.h: the types the hooks receive
 * These headers are installed with this one in <includedir>/hpcport/
 * (`pkg-config --cflags hpcport-adapter`). A plugin links against nothing:
 * build it with `cc -shared -fPIC $(pkg-config --cflags hpcport-adapter)`
 * (or meson's shared_module) and leave the hp_* symbols undefined.
 *
 * The entry point is one exported data symbol, `hpcport_adapter`, a struct
 * hpcport_adapter; define it with HPCPORT_ADAPTER():
 *
 *     static int fork_render(const struct hp_jobspec *spec,
 *                            const struct hp_site *site,
 *                            struct hp_buf *out, struct hp_err *err) {...}
 *     static const struct hp_adapter_ops ops = {
 *         .name = "fork", .render = fork_render, .submit = ..., ...
 *     };
 *     HPCPORT_ADAPTER("fork", &ops, "1.0", "jobs as background processes");
 *
 * ABI. HPCPORT_ADAPTER_ABI names the layout and meaning of everything the
 * headers above declare; hpcport raises it whenever one of those structs or
 * a hook's contract changes. The descriptor records the ABI the plugin was
 * built with and the sizes of the structs it shares with hpcport; a plugin
 * whose ABI differs, or whose sizes differ from this hpcport's (headers
 * of another build with the same number), is refused at load time with an
 * error that names the plugin file ("ABI 2, this hpcport speaks 1; rebuild
 * the plugin against this hpcport's headers"). So are a plugin without the
 * `hpcport_adapter` symbol, one whose descriptor or ops name another
 * adapter than its file name, and one without a render hook. A refused
 * plugin stops only the sites that use it. `abi` and `size` stay the first
 * two members of struct hpcport_adapter in every ABI, so that any hpcport
 * can read them.
 *
 * A plugin runs inside hpcport: it must not print (report through hp_err),
 * exit, or change signal dispositions; a crash in a plugin is a crash of
 * hpcport. Hooks are called from one thread. */
#ifndef HPCPORT_ADAPTER_H
#define HPCPORT_ADAPTER_H

#include "adapter.h"
#include "buf.h"
#include "conn.h"
#include "err.h"
#include "plan.h"
#include "quote.h"
#include "script.h"
#include "site.h"
#include "stage.h"
#include "util.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this header describes. */
#define HPCPORT_ADAPTER_ABI 1u

/* The name of the entry-point symbol, for dlsym(). */
#define HPCPORT_ADAPTER_SYMBOL "hpcport_adapter"

struct hpcport_adapter {
    unsigned abi;                     /* HPCPORT_ADAPTER_ABI; always first */
    unsigned size;                    /* sizeof(struct hpcport_adapter); second */
    unsigned ops_size;                /* sizeof(struct hp_adapter_ops) */
    unsigned jobspec_size;            /* sizeof(struct hp_jobspec) */
    unsigned site_size;               /* sizeof(struct hp_site) */
    unsigned plan_size;               /* sizeof(struct hp_plan) */
    const char *name;                 /* adapter name: the file name without .so */
    const struct hp_adapter_ops *ops; /* ops->name must equal name */
    const char *version;              /* the plugin's own version, or NULL */
    const char *summary;              /* one line for `hpcport adapters`, or NULL */
};

#if defined(__GNUC__)
#define HPCPORT_ADAPTER_EXPORT __attribute__((visibility("default")))
#else
#define HPCPORT_ADAPTER_EXPORT
#endif

/* Define the plugin's entry point (once, at file scope). */
#define HPCPORT_ADAPTER(name_, ops_, version_, summary_)                      \
    HPCPORT_ADAPTER_EXPORT extern const struct hpcport_adapter hpcport_adapter; \
    const struct hpcport_adapter hpcport_adapter = {                        \
        .abi = HPCPORT_ADAPTER_ABI,                                         \
        .size = sizeof(struct hpcport_adapter),                             \
        .ops_size = sizeof(struct hp_adapter_ops),                          \
        .jobspec_size = sizeof(struct hp_jobspec),                          \
        .site_size = sizeof(struct hp_site),                                \
        .plan_size = sizeof(struct hp_plan),                                \
        .name = (name_),                                                    \
        .ops = (ops_),                                                      \
        .version = (version_),                                              \
        .summary = (summary_),                                              \
    }

#ifdef __cplusplus
}
#endif

#endif
