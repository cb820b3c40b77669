#include <string.h>
#include "embedded.h"
#include "banned.h"

const struct hp_embedded_file *hp_embedded_find(const struct hp_embedded_file *table,
                                                const char *name)
{
    for (; table->name; table++)
        if (!strcmp(table->name, name))
            return table;
    return NULL;
}
