/* validate.c - documents against the embedded schemas, errors positioned. */
#include "doc.h"
#include "schema.h"
#include "banned.h"

int hp_doc_validate(const struct hp_doc *doc, const char *schema_name, struct hp_err *err)
{
    const struct hp_schema *s = hp_schema_builtin(schema_name, err);
    if (!s)
        return -1;
    struct hp_verrors ve = { 0 };
    int r = hp_schema_validate(s, doc->root, &ve);
    if (r == 0) {
        hp_verrors_release(&ve);
        return 0;
    }
    if (r < 0 || !ve.n)
        hp_doc_err(doc, err, HP_EINPUT, "", 0, "document does not match the %s schema",
                   schema_name);
    else
        hp_doc_err(doc, err, HP_EINPUT, ve.v[0].pointer, ve.v[0].at_key, "%s",
                   ve.v[0].message);
    hp_verrors_release(&ve);
    return -1;
}
