/* embedded.h - files compiled into the binary (schemas, bundled profiles). */
#ifndef HP_EMBEDDED_H
#define HP_EMBEDDED_H

#include <stddef.h>

struct hp_embedded_file {
    const char *name;   /* file name without its suffix */
    const char *text;   /* NUL-terminated */
    size_t len;
};

/* Terminated by an entry whose name is NULL. */
extern const struct hp_embedded_file hp_embedded_schemas[];   /* schemas/<name>.schema.json */
extern const struct hp_embedded_file hp_embedded_profiles[];  /* sites/profiles/<name>.yaml */

const struct hp_embedded_file *hp_embedded_find(const struct hp_embedded_file *table,
                                                const char *name);

#endif
