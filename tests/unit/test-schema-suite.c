/* test-schema-suite.c - run the official JSON Schema Test Suite (draft7) against
 * core/schema.c and print TAP.
 *
 * usage: test-schema-suite [DIR]   (DIR holds the draft7 *.json files; the
 * optional/ folder is not run). A missing DIR is a failure, not a skip.
 *
 * Every case runs twice: for the verdict only (no error list) and collecting
 * errors; both must agree, and an invalid instance must yield at least one
 * error with a message. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "schema.h"
#include "banned.h"

#ifndef SUITE_DIR
#define SUITE_DIR "/usr/share/json-schema-test-suite/tests/draft7"
#endif

/* Cases that need what the validator does not do: fetching remote schemas
 * (there is no registry of remote documents). group NULL = the whole file. */
static const struct skip {
    const char *file, *group, *why;
} skips[] = {
    {"refRemote.json", NULL, "remote refs are not supported"},
    {"ref.json", "remote ref, containing refs itself",
     "remote ref to the draft-07 metaschema is not supported"},
    {"definitions.json", NULL, "remote ref to the draft-07 metaschema is not supported"},
};

static const char *skip_reason(const char *file, const char *group)
{
    for (size_t i = 0; i < sizeof(skips) / sizeof(skips[0]); i++)
        if (!strcmp(skips[i].file, file) && (!skips[i].group || !strcmp(skips[i].group, group)))
            return skips[i].why;
    return NULL;
}

static int tap_n;

struct counts {
    int pass, fail, skip;
};

static void one_file(const char *dir, const char *file, struct counts *total)
{
    struct counts c = {0, 0, 0};
    char path[4096];
    json_error_t jerr;
    json_t *groups, *g, *t;
    size_t gi, ti;

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    groups = json_load_file(path, JSON_DECODE_ANY, &jerr);
    if (!json_is_array(groups)) {
        printf("not ok %d - %s: cannot load: %s\n", ++tap_n, file, jerr.text);
        total->fail++;
        json_decref(groups);
        return;
    }
    json_array_foreach(groups, gi, g) {
        const char *gdesc = json_string_value(json_object_get(g, "description"));
        const char *why = skip_reason(file, gdesc ? gdesc : "");
        json_t *tests = json_object_get(g, "tests");
        struct hp_err err;
        struct hp_schema *s = NULL;

        hp_err_init(&err);
        if (!why)
            s = hp_schema_new(json_object_get(g, "schema"), &err);
        json_array_foreach(tests, ti, t) {
            const char *tdesc = json_string_value(json_object_get(t, "description"));
            json_t *data = json_object_get(t, "data");
            int want = json_is_true(json_object_get(t, "valid")) ? 0 : 1;
            struct hp_verrors errs = {0};
            int r1, r2, good;
            const char *detail = "";

            if (why) {
                printf("ok %d - %s: %s: %s # SKIP %s\n", ++tap_n, file, gdesc, tdesc, why);
                c.skip++;
                continue;
            }
            if (!s) {
                printf("not ok %d - %s: %s: %s\n# schema failed to compile: %s\n", ++tap_n,
                       file, gdesc, tdesc, err.msg);
                c.fail++;
                continue;
            }
            r1 = hp_schema_validate(s, data, NULL);
            r2 = hp_schema_validate(s, data, &errs);
            good = r1 == want && r2 == want;
            if (good && want == 1 && (errs.n == 0 || !errs.v[0].message[0])) {
                good = 0;
                detail = "invalid, but no error message";
            } else if (good && want == 0 && errs.n) {
                good = 0;
                detail = "valid, but errors were reported";
            }
            printf("%s %d - %s: %s: %s\n", good ? "ok" : "not ok", ++tap_n, file, gdesc, tdesc);
            if (!good)
                printf("# expected %s, verdict-only %d, collecting %d %s\n",
                       want ? "invalid" : "valid", r1, r2, detail);
            else if (errs.n && getenv("HP_SUITE_VERBOSE"))
                printf("#   %s: %s\n", errs.v[0].pointer, errs.v[0].message);
            good ? c.pass++ : c.fail++;
            hp_verrors_release(&errs);
        }
        hp_schema_free(s);
    }
    printf("# %s: %d passed, %d failed, %d skipped\n", file, c.pass, c.fail, c.skip);
    total->pass += c.pass;
    total->fail += c.fail;
    total->skip += c.skip;
    json_decref(groups);
}

static int is_json(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return n > 5 && !strcmp(d->d_name + n - 5, ".json");
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : SUITE_DIR;
    struct dirent **list;
    struct counts total = {0, 0, 0};
    int n;

    n = scandir(dir, &list, is_json, alphasort);
    if (n <= 0) {
        printf("Bail out! no JSON Schema Test Suite files in %s\n", dir);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        one_file(dir, list[i]->d_name, &total);
        free(list[i]);
    }
    free(list);
    printf("1..%d\n", tap_n);
    printf("# total: %d passed, %d failed, %d skipped\n", total.pass, total.fail, total.skip);
    return total.fail ? 1 : 0;
}
