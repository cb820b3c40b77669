/* plugin.h - external adapters: shared objects NAME.so on the plugin path,
 * loaded with dlopen and checked against the ABI of hpcport-adapter.h.
 *
 * hp_adapter_find() and hp_adapter_for_site() (adapter.h) consult the
 * plugins after the built-ins; this header is for `hpcport adapters`, which
 * lists them all. A plugin, once loaded, stays loaded (its ops may be held by
 * any plan); a refused one is remembered with its error, so it is tried once
 * per process. */
#ifndef HP_PLUGIN_H
#define HP_PLUGIN_H

#include <stddef.h>
#include "adapter.h"
#include "err.h"

struct hp_plugin_dir {
    char *path;
    const char *source;   /* "HPCPORT_PLUGIN_PATH", "XDG_DATA_HOME", "installed" */
};

/* The plugin directories in search order (see hpcport-adapter.h), existing
 * or not; *n receives their number. Free with hp_plugin_dirs_free(). */
struct hp_plugin_dir *hp_plugin_dirs(size_t *n);
void hp_plugin_dirs_free(struct hp_plugin_dir *d, size_t n);

struct hp_plugin_info {
    char *name;                        /* file name without .so */
    char *path;                        /* the file */
    const struct hp_adapter_ops *ops;  /* borrowed; NULL when refused or shadowed */
    unsigned abi;                      /* as the plugin declares it; 0 if unknown */
    char *version, *summary;           /* from the plugin, may be NULL */
    char *error;                       /* why it was refused, or NULL */
    char *shadowed_by;                 /* "built-in" or the path of the plugin that
                                          wins for this name, or NULL */
};

/* Every *.so in the plugin directories, in search order (directories in
 * order, files sorted by name), each loaded and checked unless shadowed.
 * Never fails: unreadable directories are skipped, refused plugins carry
 * their error. Free with hp_plugin_infos_free(). */
void hp_plugin_scan(struct hp_plugin_info **out, size_t *n);
void hp_plugin_infos_free(struct hp_plugin_info *v, size_t n);

/* The plugin that provides adapter name (loaded on first use), or NULL with
 * err (HP_ESITE): no NAME.so on the path -- the message names the
 * directories searched and suggests a close adapter name -- or the plugin
 * was refused (the message names the file and says why). err may be NULL. */
const struct hp_adapter_ops *hp_plugin_find(const char *name, struct hp_err *err);

/* 1 if name can name an adapter: [a-z][a-z0-9_-]*, at most 64 bytes. */
int hp_adapter_valid_name(const char *name);

#endif
