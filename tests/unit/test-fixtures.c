/* test-fixtures.c - the workflow fixture folders, looped over (TAP).
 *
 * usage: test-fixtures SRCDIR
 *
 * Runs from SRCDIR so file names in messages are relative to the repository
 * root. Every tests/fixtures/workflow/invalid/NAME.yaml must fail to load or
 * expand with exactly the line in NAME.err (hp_err_format() output, the line
 * the CLI prints); every valid/NAME.yaml and every workflow among
 * examples/DIR/NAME.yaml must load and expand. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "util.h"
#include "workflow.h"

static int ntests, nfailed;

static void result(int ok, const char *name, const char *fmt, const char *a, const char *b)
{
    ntests++;
    printf("%sok %d - %s\n", ok ? "" : "not ", ntests, name);
    if (!ok) {
        nfailed++;
        printf("# ");
        printf(fmt, a, b);
        printf("\n");
    }
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in dir ending in suffix; NULL-terminated. */
static char **list(const char *dir, const char *suffix, size_t *n)
{
    DIR *d = opendir(dir);
    char **v = NULL;
    size_t alloc = 0;
    *n = 0;
    if (!d)
        return hp_xcalloc(1, sizeof(char *));
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!hp_ends_with(e->d_name, suffix))
            continue;
        HP_ALLOC_GROW(v, *n + 2, alloc);
        v[(*n)++] = hp_xasprintf("%s/%s", dir, e->d_name);
    }
    closedir(d);
    if (!v)
        return hp_xcalloc(1, sizeof(char *));
    qsort(v, *n, sizeof(*v), cmp);
    v[*n] = NULL;
    return v;
}

static int load_expand(const char *path, struct hp_err *err, size_t *ninst)
{
    hp_err_init(err);
    struct hp_workflow *wf = hp_workflow_load(path, err);
    int ok = wf && hp_workflow_expand(wf, NULL, 0, err) == 0;
    if (ok && ninst)
        *ninst = wf->ninst;
    hp_workflow_free(wf);
    return ok;
}

static void check_valid(const char *path)
{
    struct hp_err err;
    char line[2300];
    size_t n = 0;
    if (load_expand(path, &err, &n)) {
        result(n > 0, path, "%s%s", "expanded to no instances", "");
        return;
    }
    hp_err_format(&err, line, sizeof(line));
    result(0, path, "unexpected error: %s%s", line, "");
}

static void check_invalid(const char *path)
{
    struct hp_err err;
    char line[2300], *want = NULL;
    size_t len;
    char *errpath = hp_xasprintf("%.*s.err", (int)(strlen(path) - 5), path);
    if (hp_read_file(errpath, 1 << 16, &want, &len) < 0) {
        result(0, path, "cannot read %s%s", errpath, "");
        free(errpath);
        return;
    }
    while (len && (want[len - 1] == '\n' || want[len - 1] == '\r'))
        want[--len] = '\0';
    if (load_expand(path, &err, NULL)) {
        result(0, path, "loaded without error; expected: %s%s", want, "");
    } else {
        hp_err_format(&err, line, sizeof(line));
        result(!strcmp(line, want), path, "expected: %s\n#      got: %s", want, line);
    }
    free(want);
    free(errpath);
}

static void free_list(char **v)
{
    for (size_t i = 0; v[i]; i++)
        free(v[i]);
    free(v);
}

int main(int argc, char **argv)
{
    const char *src = argc > 1 ? argv[1] : getenv("HP_SRCDIR");
    if (src && chdir(src) < 0) {
        perror(src);
        return 1;
    }
    size_t n;
    char **valid = list("tests/fixtures/workflow/valid", ".yaml", &n);
    result(n >= 5, "valid fixtures found", "only %s%s", n ? "a few" : "none", "");
    for (size_t i = 0; valid[i]; i++)
        check_valid(valid[i]);
    free_list(valid);

    char **invalid = list("tests/fixtures/workflow/invalid", ".yaml", &n);
    result(n >= 17, "invalid fixtures found", "only %s%s", n ? "a few" : "none", "");
    for (size_t i = 0; invalid[i]; i++)
        check_invalid(invalid[i]);
    free_list(invalid);

    /* every .err has its .yaml */
    char **errs = list("tests/fixtures/workflow/invalid", ".err", &n);
    for (size_t i = 0; errs[i]; i++) {
        char *y = hp_xasprintf("%.*s.yaml", (int)(strlen(errs[i]) - 4), errs[i]);
        result(access(y, R_OK) == 0, errs[i], "no %s%s", y, "");
        free(y);
    }
    free_list(errs);

    /* the workflows among examples/DIR/NAME.yaml (mappings with 'tasks') */
    DIR *d = opendir("examples");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *sub = hp_xasprintf("examples/%s", e->d_name);
        char **ex = list(sub, ".yaml", &n);
        for (size_t i = 0; ex[i]; i++) {
            struct hp_err err;
            hp_err_init(&err);
            struct hp_doc *doc = hp_doc_load_file(ex[i], NULL, &err);
            int wf = doc && json_is_object(doc->root) && json_object_get(doc->root, "tasks");
            hp_doc_free(doc);
            if (wf || !doc)
                check_valid(ex[i]);
        }
        free_list(ex);
        free(sub);
    }
    if (d)
        closedir(d);
    printf("1..%d\n", ntests);
    return nfailed ? 1 : 0;
}
