/* plugin.c - adapter plugins: find NAME.so on the plugin path, dlopen it and
 * refuse it, with a reason that names the file, unless its descriptor
 * matches this hpcport's ABI (hpcport-adapter.h).
 *
 * Every load goes through one cache, keyed by file path, that lives as long
 * as the process: plans borrow a plugin's ops, so a loaded plugin is never
 * closed, and a refused one is not tried again (dlopen would run its
 * constructors again). Files and directories that every user may write to
 * are refused: loading one would run anybody's code.
 *
 * A plugin is first loaded in a child process (fork, dlopen, read its
 * descriptor, exit): one that crashes or exits while it loads -- in a
 * constructor, or through a broken relocation -- is refused with what
 * happened to the child, and this process never runs it. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "hpcport-adapter.h"
#include "plugin.h"
#include "site.h"
#include "util.h"
#include "banned.h"

#ifndef HP_PLUGINDIR
#define HP_PLUGINDIR "/usr/local/lib/hpcport/adapters"
#endif

#define NAME_MAX_LEN 64

struct loaded {
    char *path;
    char *name;
    const struct hp_adapter_ops *ops;   /* NULL: refused */
    unsigned abi;
    char *version, *summary;
    char *error;
};

static struct loaded *cache;
static size_t ncache, cache_alloc;

int hp_adapter_valid_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > NAME_MAX_LEN || name[0] < 'a' || name[0] > 'z')
        return 0;
    for (size_t i = 1; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* ------------------------------------------------------------ directories */

static void dir_add(struct hp_plugin_dir **d, size_t *n, size_t *alloc, char *path,
                    const char *source)
{
    HP_ALLOC_GROW(*d, *n + 1, *alloc);
    (*d)[*n].path = path;
    (*d)[*n].source = source;
    (*n)++;
}

struct hp_plugin_dir *hp_plugin_dirs(size_t *n)
{
    struct hp_plugin_dir *d = NULL;
    size_t alloc = 0;
    *n = 0;
    const char *env = getenv("HPCPORT_PLUGIN_PATH");
    for (const char *p = env; p && *p;) {
        size_t len = strcspn(p, ":");
        if (len)
            dir_add(&d, n, &alloc, hp_xstrndup(p, len), "HPCPORT_PLUGIN_PATH");
        p += len + (p[len] == ':');
    }
    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    if (xdg && xdg[0] == '/')
        dir_add(&d, n, &alloc, hp_xasprintf("%s/hpcport/adapters", xdg), "XDG_DATA_HOME");
    else if (home && home[0] == '/')
        dir_add(&d, n, &alloc, hp_xasprintf("%s/.local/share/hpcport/adapters", home),
                "XDG_DATA_HOME");
    dir_add(&d, n, &alloc, hp_xstrdup(HP_PLUGINDIR), "installed");
    return d;
}

void hp_plugin_dirs_free(struct hp_plugin_dir *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(d[i].path);
    free(d);
}

static char *dirs_text(const struct hp_plugin_dir *d, size_t n)
{
    struct hp_buf b = HP_BUF_INIT;
    for (size_t i = 0; i < n; i++)
        hp_buf_addf(&b, "%s%s", i ? (i + 1 == n ? " and " : ", ") : "", d[i].path);
    return hp_buf_detach(&b, NULL);
}

/* ------------------------------------------------------------ loading */

static int refuse(struct loaded *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int refuse(struct loaded *l, const char *fmt, ...)
{
    struct hp_buf b = HP_BUF_INIT;
    va_list ap;
    hp_buf_addf(&b, "adapter plugin %s: ", l->path);
    va_start(ap, fmt);
    hp_buf_vaddf(&b, fmt, ap);
    va_end(ap);
    l->error = hp_buf_detach(&b, NULL);
    return -1;
}

static int check_size(struct loaded *l, const char *what, unsigned theirs, size_t ours)
{
    if (theirs == ours)
        return 0;
    return refuse(l, "built against other hpcport headers of ABI %u (%s is %u bytes there, "
                  "%zu here); rebuild the plugin against this hpcport's headers",
                  HPCPORT_ADAPTER_ABI, what, theirs, ours);
}

static int check_file(struct loaded *l)
{
    struct stat st;
    if (stat(l->path, &st) < 0)
        return refuse(l, "%s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        return refuse(l, "not a regular file");
    if (st.st_mode & S_IWOTH)
        return refuse(l, "every user may write to it; refusing to load it "
                      "(chmod o-w the file)");
    char *dir = hp_dirname(l->path);
    int bad = stat(dir, &st) == 0 && (st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX);
    free(dir);
    if (bad)
        return refuse(l, "every user may write to its directory; refusing to load it");
    return 0;
}

/* Load the plugin in a child first; refuse it when that child does not
 * come back in one piece. Load errors that dlopen reports are left to the
 * real load, which words them. */
static int probe(struct loaded *l)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return refuse(l, "cannot try it in a child process: %s", strerror(errno));
    if (pid == 0) {
        /* the signal, not a handler's report (sanitizers install some) */
        static const int sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
        for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
            signal(sigs[i], SIG_DFL);
        void *h = dlopen(l->path, RTLD_NOW | RTLD_LOCAL);
        if (h) {
            const volatile struct hpcport_adapter *d = dlsym(h, HPCPORT_ADAPTER_SYMBOL);
            if (d && d->abi == HPCPORT_ADAPTER_ABI && d->ops) {
                const volatile struct hp_adapter_ops *o = d->ops;
                (void)o->name;
            }
        }
        _exit(0);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return refuse(l, "cannot try it in a child process: %s", strerror(errno));
    if (WIFSIGNALED(st))
        return refuse(l, "it crashed while loading (signal %d, %s); a constructor or its "
                      "descriptor is broken", WTERMSIG(st), strsignal(WTERMSIG(st)));
    if (WEXITSTATUS(st) != 0)
        return refuse(l, "it ended the process while loading (exit %d)", WEXITSTATUS(st));
    return 0;
}

static int load_into(struct loaded *l)
{
    if (!hp_adapter_valid_name(l->name))
        return refuse(l, "'%s' is not an adapter name ([a-z][a-z0-9_-]*, at most %d "
                      "characters); rename the file", l->name, NAME_MAX_LEN);
    if (check_file(l) < 0 || probe(l) < 0)
        return -1;
    dlerror();
    void *h = dlopen(l->path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        /* dlerror names the file itself; keep only what follows */
        size_t pl = strlen(l->path);
        if (e && !strncmp(e, l->path, pl) && !strncmp(e + pl, ": ", 2))
            e += pl + 2;
        return refuse(l, "cannot load it: %s", e ? e : "unknown dlopen error");
    }
    const struct hpcport_adapter *d = dlsym(h, HPCPORT_ADAPTER_SYMBOL);
    int ret = -1;
    if (!d) {
        refuse(l, "no symbol '%s': not an hpcport adapter plugin (define one with "
               "HPCPORT_ADAPTER() from hpcport-adapter.h)", HPCPORT_ADAPTER_SYMBOL);
        goto out;
    }
    l->abi = d->abi;
    if (d->abi != HPCPORT_ADAPTER_ABI) {
        refuse(l, "ABI %u, this hpcport speaks %u; rebuild the plugin against this "
               "hpcport's headers", d->abi, HPCPORT_ADAPTER_ABI);
        goto out;
    }
    if (check_size(l, "struct hpcport_adapter", d->size, sizeof(*d)) < 0 ||
        check_size(l, "struct hp_adapter_ops", d->ops_size, sizeof(struct hp_adapter_ops)) < 0 ||
        check_size(l, "struct hp_jobspec", d->jobspec_size, sizeof(struct hp_jobspec)) < 0 ||
        check_size(l, "struct hp_site", d->site_size, sizeof(struct hp_site)) < 0 ||
        check_size(l, "struct hp_plan", d->plan_size, sizeof(struct hp_plan)) < 0)
        goto out;
    l->version = d->version ? hp_xstrdup(d->version) : NULL;
    l->summary = d->summary ? hp_xstrdup(d->summary) : NULL;
    if (!d->name || strcmp(d->name, l->name)) {
        refuse(l, "it defines adapter '%s', but a file %s.so must define adapter '%s' "
               "(rename the file or fix HPCPORT_ADAPTER())", d->name ? d->name : "(null)",
               l->name, l->name);
        goto out;
    }
    if (!d->ops) {
        refuse(l, "adapter '%s' has no ops (HPCPORT_ADAPTER() got NULL)", l->name);
        goto out;
    }
    if (!d->ops->name || strcmp(d->ops->name, l->name)) {
        refuse(l, "its ops are named '%s', not '%s'", d->ops->name ? d->ops->name : "(null)",
               l->name);
        goto out;
    }
    if (!d->ops->render) {
        refuse(l, "adapter '%s' has no render hook, which every adapter needs", l->name);
        goto out;
    }
    l->ops = d->ops;
    ret = 0;
out:
    if (ret < 0)
        dlclose(h);
    return ret;
}

/* The cache entry for path (loading it the first time). */
static struct loaded *load(const char *path, const char *name)
{
    for (size_t i = 0; i < ncache; i++)
        if (!strcmp(cache[i].path, path))
            return &cache[i];
    HP_ALLOC_GROW(cache, ncache + 1, cache_alloc);
    struct loaded *l = &cache[ncache++];
    memset(l, 0, sizeof(*l));
    l->path = hp_xstrdup(path);
    l->name = hp_xstrdup(name);
    load_into(l);
    return l;
}

static int is_builtin(const char *name)
{
    const struct hp_adapter_ops *const *b = hp_adapter_list();
    for (size_t i = 0; b[i]; i++)
        if (!strcmp(b[i]->name, name))
            return 1;
    return 0;
}

/* ------------------------------------------------------------ lookup */

static char **so_files(const char *dir);

/* A close name among the built-ins and the .so files on the path (which are
 * not loaded for this: an error message runs no plugin code); new string or
 * NULL. */
static char *suggest(const char *name, const struct hp_plugin_dir *d, size_t nd)
{
    const struct hp_adapter_ops *const *b = hp_adapter_list();
    const char **cand = NULL;
    char **names = NULL;
    size_t n = 0, alloc = 0, nn = 0, nalloc = 0;
    for (size_t i = 0; b[i]; i++) {
        HP_ALLOC_GROW(cand, n + 1, alloc);
        cand[n++] = b[i]->name;
    }
    for (size_t i = 0; i < nd; i++) {
        char **files = so_files(d[i].path);
        for (size_t k = 0; files && files[k]; k++) {
            files[k][strlen(files[k]) - 3] = '\0';
            HP_ALLOC_GROW(names, nn + 1, nalloc);
            names[nn++] = files[k];
        }
        free(files);
    }
    for (size_t i = 0; i < nn; i++) {
        HP_ALLOC_GROW(cand, n + 1, alloc);
        cand[n++] = names[i];
    }
    HP_ALLOC_GROW(cand, n + 1, alloc);
    cand[n] = NULL;
    const char *s = hp_suggest(name, cand);
    char *ret = s ? hp_xstrdup(s) : NULL;
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
    free(names);
    free(cand);
    return ret;
}

static void not_found(const char *name, struct hp_err *err)
{
    size_t nd;
    struct hp_plugin_dir *d = hp_plugin_dirs(&nd);
    char *dirs = dirs_text(d, nd);
    struct hp_buf b = HP_BUF_INIT;
    const struct hp_adapter_ops *const *bl = hp_adapter_list();
    for (size_t i = 0; bl[i]; i++)
        hp_buf_addf(&b, "%s%s", i ? ", " : "", bl[i]->name);
    char *s = suggest(name, d, nd);
    char hint[NAME_MAX_LEN + 32] = "";
    if (s)
        snprintf(hint, sizeof(hint), " (did you mean '%s'?)", s);
    free(s);
    hp_err_set(err, HP_ESITE, "unknown scheduler '%s'%s: it is not a built-in adapter (%s) "
               "and no adapter plugin %s.so is in %s; see 'hpcport adapters'", name, hint,
               b.buf, name, dirs);
    hp_buf_release(&b);
    free(dirs);
    hp_plugin_dirs_free(d, nd);
}

const struct hp_adapter_ops *hp_plugin_find(const char *name, struct hp_err *err)
{
    struct hp_err dummy;
    if (!err) {
        hp_err_init(&dummy);
        err = &dummy;
    }
    if (!hp_adapter_valid_name(name)) {
        hp_err_set(err, HP_ESITE, "'%s' is not an adapter name ([a-z][a-z0-9_-]*)",
                   name ? name : "");
        return NULL;
    }
    size_t nd;
    struct hp_plugin_dir *d = hp_plugin_dirs(&nd);
    const struct loaded *l = NULL;
    for (size_t i = 0; i < nd && !l; i++) {
        char *path = hp_xasprintf("%s/%s.so", d[i].path, name);
        struct stat st;
        if (stat(path, &st) == 0)
            l = load(path, name);
        free(path);
    }
    hp_plugin_dirs_free(d, nd);
    if (!l) {
        not_found(name, err);
        return NULL;
    }
    if (!l->ops)
        hp_err_set(err, HP_ESITE, "%s", l->error);
    return l->ops;
}

/* Fill err at the origin of the site's scheduler.type (a file position, or
 * none for --set). */
static void site_error(const struct hp_site *site, const struct hp_err *why, struct hp_err *err)
{
    const char *origin = hp_site_origin(site, "/scheduler/type");
    const char *c2 = strrchr(origin, ':');
    const char *c1 = c2 ? c2 - 1 : NULL;
    while (c1 && c1 > origin && *c1 != ':')
        c1--;
    int line = 0, col = 0;
    if (c1 && c1 > origin && *c1 == ':' && sscanf(c1 + 1, "%d:%d", &line, &col) == 2 &&
        line > 0) {
        char *file = hp_xstrndup(origin, (size_t)(c1 - origin));
        hp_err_at(err, why->code, file, line, col, "/scheduler/type", "site '%s': %s",
                  site->name, why->msg);
        free(file);
    } else if (*origin) {
        hp_err_set(err, why->code, "site '%s' (scheduler.type from %s): %s", site->name,
                   origin, why->msg);
    } else {
        hp_err_set(err, why->code, "site '%s': %s", site->name, why->msg);
    }
}

const struct hp_adapter_ops *hp_adapter_for_site(const struct hp_site *site, struct hp_err *err)
{
    const struct hp_adapter_ops *const *b = hp_adapter_list();
    for (size_t i = 0; b[i]; i++)
        if (!strcmp(b[i]->name, site->scheduler)) {
            if (!b[i]->render)
                hp_err_set(err, HP_ESITE, "site '%s' uses scheduler '%s', which this hpcport "
                           "cannot drive yet", site->name, site->scheduler);
            return b[i]->render ? b[i] : NULL;
        }
    struct hp_err why;
    hp_err_init(&why);
    const struct hp_adapter_ops *ops = hp_plugin_find(site->scheduler, &why);
    if (!ops)
        site_error(site, &why, err);
    return ops;
}

/* ------------------------------------------------------------ listing */

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.so names in dir, sorted (new strings, NULL-terminated), or NULL. */
static char **so_files(const char *dir)
{
    DIR *dh = opendir(dir);
    if (!dh)
        return NULL;
    char **v = NULL;
    size_t n = 0, alloc = 0;
    struct dirent *de;
    while ((de = readdir(dh))) {
        size_t len = strlen(de->d_name);
        if (len <= 3 || strcmp(de->d_name + len - 3, ".so") || de->d_name[0] == '.')
            continue;
        HP_ALLOC_GROW(v, n + 2, alloc);
        v[n++] = hp_xstrdup(de->d_name);
    }
    closedir(dh);
    if (!v)
        return NULL;
    v[n] = NULL;
    qsort(v, n, sizeof(*v), by_name);
    return v;
}

static char *dup_or_null(const char *s)
{
    return s ? hp_xstrdup(s) : NULL;
}

void hp_plugin_scan(struct hp_plugin_info **out, size_t *n)
{
    size_t nd, alloc = 0;
    struct hp_plugin_dir *d = hp_plugin_dirs(&nd);
    struct hp_plugin_info *v = NULL;
    *n = 0;
    for (size_t i = 0; i < nd; i++) {
        char **files = so_files(d[i].path);
        for (size_t k = 0; files && files[k]; k++) {
            HP_ALLOC_GROW(v, *n + 1, alloc);
            struct hp_plugin_info *pi = &v[(*n)++];
            memset(pi, 0, sizeof(*pi));
            pi->name = hp_xstrndup(files[k], strlen(files[k]) - 3);
            pi->path = hp_path_join(d[i].path, files[k]);
            for (size_t j = 0; j + 1 < *n && !pi->shadowed_by; j++)
                if (!strcmp(v[j].name, pi->name) && !v[j].shadowed_by)
                    pi->shadowed_by = hp_xstrdup(v[j].path);
            if (!pi->shadowed_by && is_builtin(pi->name))
                pi->shadowed_by = hp_xstrdup("built-in");
            if (!pi->shadowed_by) {
                const struct loaded *l = load(pi->path, pi->name);
                pi->ops = l->ops;
                pi->abi = l->abi;
                pi->version = dup_or_null(l->version);
                pi->summary = dup_or_null(l->summary);
                pi->error = dup_or_null(l->error);
            }
            free(files[k]);
        }
        free(files);
    }
    hp_plugin_dirs_free(d, nd);
    *out = v;
}

void hp_plugin_infos_free(struct hp_plugin_info *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].path);
        free(v[i].version);
        free(v[i].summary);
        free(v[i].error);
        free(v[i].shadowed_by);
    }
    free(v);
}
