/* deploy.c - put this hpcport binary on a site; see deploy.h. */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "deploy.h"
#include "conn.h"
#include "util.h"
#include "banned.h"

#define BIN_DIR_REL ".local/share/hpcport/bin"
#define MAX_BINARY ((size_t)1 << 30)

void hp_deploy_bin_release(struct hp_deploy_bin *b)
{
    for (size_t i = 0; i < b->nneeded; i++)
        free(b->needed[i]);
    free(b->needed);
    memset(b, 0, sizeof(*b));
}

static const char *machine_name(unsigned m, int big_endian)
{
    switch (m) {
    case EM_X86_64: return "x86_64";
    case EM_386: return "i686";
    case EM_AARCH64: return "aarch64";
    case EM_ARM: return "armv7l";
    case EM_PPC64: return big_endian ? "ppc64" : "ppc64le";
    case EM_RISCV: return "riscv64";
    case EM_S390: return "s390x";
    default: return NULL;
    }
}

/* A NUL-terminated string at off in [base, base+size), or NULL. */
static const char *str_at(const char *base, size_t size, size_t off)
{
    if (off >= size || !memchr(base + off, '\0', size - off))
        return NULL;
    return base + off;
}

static void note_glibc(struct hp_deploy_bin *b, const char *name)
{
    int maj, min;
    char tail;
    if (sscanf(name, "GLIBC_%d.%d%c", &maj, &min, &tail) == 2 ||
        sscanf(name, "GLIBC_%d.%d.%*d%c", &maj, &min, &tail) == 2) {
        if (maj > b->glibc_major || (maj == b->glibc_major && min > b->glibc_minor)) {
            b->glibc_major = maj;
            b->glibc_minor = min;
        }
    }
}

/* The 64-bit little- or big-endian ELF of this machine's byte order; other
 * files report only their machine. */
static int parse_elf64(const unsigned char *d, size_t len, struct hp_deploy_bin *b,
                       const char *path, struct hp_err *err)
{
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)d;
    if (len < sizeof(*eh) || eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_shoff > len ||
        (len - eh->e_shoff) / sizeof(Elf64_Shdr) < eh->e_shnum)
        return hp_err_set(err, HP_EINPUT, "%s: truncated or odd ELF section table", path);
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(d + eh->e_shoff);
    size_t alloc = 0;
    for (size_t i = 0; i < eh->e_shnum; i++) {
        const Elf64_Shdr *s = &sh[i];
        if (s->sh_type != SHT_DYNAMIC && s->sh_type != SHT_GNU_verneed)
            continue;
        if (s->sh_offset > len || s->sh_size > len - s->sh_offset || s->sh_link >= eh->e_shnum)
            continue;
        const Elf64_Shdr *strs = &sh[s->sh_link];
        if (strs->sh_offset > len || strs->sh_size > len - strs->sh_offset)
            continue;
        const char *str = (const char *)d + strs->sh_offset;
        size_t strsz = strs->sh_size;
        if (s->sh_type == SHT_DYNAMIC) {
            size_t n = s->sh_size / sizeof(Elf64_Dyn);
            const Elf64_Dyn *dyn = (const Elf64_Dyn *)(d + s->sh_offset);
            for (size_t k = 0; k < n && dyn[k].d_tag != DT_NULL; k++) {
                if (dyn[k].d_tag != DT_NEEDED)
                    continue;
                const char *name = str_at(str, strsz, dyn[k].d_un.d_val);
                if (!name)
                    continue;
                HP_ALLOC_GROW(b->needed, b->nneeded + 1, alloc);
                b->needed[b->nneeded++] = hp_xstrdup(name);
            }
            continue;
        }
        /* .gnu.version_r: a chain of Verneed records, each with a chain of
         * Vernaux; offsets are relative to the record that holds them */
        size_t off = 0;
        for (unsigned guard = 0; guard < 4096; guard++) {
            if (off > s->sh_size || s->sh_size - off < sizeof(Elf64_Verneed))
                break;
            const Elf64_Verneed *vn = (const Elf64_Verneed *)(d + s->sh_offset + off);
            size_t aoff = off + vn->vn_aux;
            for (unsigned a = 0; a < vn->vn_cnt && a < 4096; a++) {
                if (aoff > s->sh_size || s->sh_size - aoff < sizeof(Elf64_Vernaux))
                    break;
                const Elf64_Vernaux *va = (const Elf64_Vernaux *)(d + s->sh_offset + aoff);
                const char *name = str_at(str, strsz, va->vna_name);
                if (name)
                    note_glibc(b, name);
                if (!va->vna_next)
                    break;
                aoff += va->vna_next;
            }
            if (!vn->vn_next)
                break;
            off += vn->vn_next;
        }
    }
    return 0;
}

int hp_deploy_bin_read(const char *path, struct hp_deploy_bin *b, struct hp_err *err)
{
    char *data = NULL;
    size_t len = 0;
    int ret = -1;
    memset(b, 0, sizeof(*b));
    if (hp_read_file(path, MAX_BINARY, &data, &len) < 0)
        return hp_err_errno(err, "cannot read '%s'", path);
    const unsigned char *d = (const unsigned char *)data;
    if (len < EI_NIDENT + 4 || memcmp(d, ELFMAG, SELFMAG) != 0) {
        hp_err_set(err, HP_EINPUT, "'%s' is not an ELF executable", path);
        goto out;
    }
    int big = d[EI_DATA] == ELFDATA2MSB;
    unsigned m = big ? (unsigned)(d[18] << 8 | d[19]) : (unsigned)(d[18] | d[19] << 8);
    const char *arch = machine_name(m, big);
    if (!arch)
        snprintf(b->arch, sizeof(b->arch), "elf-machine-%u", m);
    else
        snprintf(b->arch, sizeof(b->arch), "%s", arch);
    int native = (d[EI_DATA] == ELFDATA2LSB) == (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__);
    if (d[EI_CLASS] == ELFCLASS64 && native && parse_elf64(d, len, b, path, err) < 0)
        goto out;
    unsigned char dig[32];
    unsigned dl = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL) || !EVP_DigestUpdate(md, data, len) ||
        !EVP_DigestFinal_ex(md, dig, &dl) || dl != 32) {
        EVP_MD_CTX_free(md);
        hp_err_set(err, HP_ESYS, "SHA-256 of '%s' failed", path);
        goto out;
    }
    EVP_MD_CTX_free(md);
    for (int i = 0; i < 32; i++)
        snprintf(b->sha256 + 2 * i, 3, "%02x", dig[i]);
    ret = 0;
out:
    free(data);
    if (ret < 0)
        hp_deploy_bin_release(b);
    return ret;
}

/* One line for `sh -c` (no newlines: a csh login shell on the site must
 * pass it on). Its output: key=value lines, then "--ldconfig" and
 * `ldconfig -p`. */
const char *hp_deploy_probe_script(void)
{
    return "d=\"$HOME/" BIN_DIR_REL "\"; "
           "printf 'home=%s\\n' \"$HOME\"; "
           "printf 'arch=%s\\n' \"$(uname -m)\"; "
           "printf 'getconf=%s\\n' \"$(getconf GNU_LIBC_VERSION 2>/dev/null)\"; "
           "printf 'ldd=%s\\n' \"$(ldd --version 2>&1 | head -n 2 | tr '\\n' ' ')\"; "
           "printf 'current=%s\\n' \"$(readlink \"$d/hpcport\" 2>/dev/null)\"; "
           "for f in \"$d\"/hpcport-*; do "
           "if [ -f \"$f\" ] && [ ! -L \"$f\" ]; then printf 'file=%s\\n' \"${f##*/}\"; fi; "
           "done; "
           "echo --ldconfig; "
           "if command -v ldconfig >/dev/null 2>&1; then ldconfig -p 2>/dev/null; "
           "elif [ -x /sbin/ldconfig ]; then /sbin/ldconfig -p 2>/dev/null; fi; "
           "exit 0";
}

void hp_deploy_site_release(struct hp_deploy_site *s)
{
    free(s->home);
    free(s->arch);
    free(s->current);
    for (size_t i = 0; i < s->nlibs; i++)
        free(s->libs[i]);
    free(s->libs);
    for (size_t i = 0; i < s->nfiles; i++)
        free(s->files[i]);
    free(s->files);
    memset(s, 0, sizeof(*s));
}

/* "2.36" at the end of a "glibc 2.36" or "ldd (GNU libc) 2.17" line */
static int parse_glibc(const char *v, int *maj, int *min)
{
    const char *sp = strrchr(v, ' ');
    const char *num = sp ? sp + 1 : v;
    return sscanf(num, "%d.%d", maj, min) == 2 ? 0 : -1;
}

/* The ldconfig -p tag that marks a library of arch, or NULL for any. */
static const char *ld_tag(const char *arch)
{
    if (!arch)
        return NULL;
    if (!strcmp(arch, "x86_64"))
        return "x86-64";
    if (!strcmp(arch, "aarch64"))
        return "AArch64";
    if (!strcmp(arch, "ppc64le") || !strcmp(arch, "ppc64"))
        return "64bit";
    return NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int hp_deploy_site_parse(const char *out, struct hp_deploy_site *s, struct hp_err *err)
{
    memset(s, 0, sizeof(*s));
    size_t fa = 0, la = 0;
    int in_ld = 0;
    char *ldd = NULL, *getconf = NULL;
    const char *p = out;
    /* ldconfig lines are matched against the arch, which comes first */
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char *line = hp_xstrndup(p, n);
        p += n + (nl != NULL);
        if (in_ld) {
            /* "\tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1" */
            char *l = line + strspn(line, " \t");
            char *paren = strstr(l, " (");
            char *close = paren ? strchr(paren, ')') : NULL;
            if (l != line && paren && close) {
                const char *tag = ld_tag(s->arch);
                *close = '\0';
                if (!tag || strstr(paren + 2, tag)) {
                    HP_ALLOC_GROW(s->libs, s->nlibs + 1, la);
                    s->libs[s->nlibs++] = hp_xstrndup(l, (size_t)(paren - l));
                }
                s->have_ldconfig = 1;
            }
        } else if (!strcmp(line, "--ldconfig")) {
            in_ld = 1;
        } else {
            char *eq = strchr(line, '=');
            if (eq) {
                *eq = '\0';
                const char *v = eq + 1;
                if (!strcmp(line, "home") && *v && !s->home)
                    s->home = hp_xstrdup(v);
                else if (!strcmp(line, "arch") && *v && !s->arch)
                    s->arch = hp_xstrdup(v);
                else if (!strcmp(line, "getconf") && !getconf)
                    getconf = hp_xstrdup(v);
                else if (!strcmp(line, "ldd") && !ldd)
                    ldd = hp_xstrdup(v);
                else if (!strcmp(line, "current") && *v && !s->current)
                    s->current = hp_xstrdup(v);
                else if (!strcmp(line, "file") && *v && !strchr(v, '/')) {
                    HP_ALLOC_GROW(s->files, s->nfiles + 1, fa);
                    s->files[s->nfiles++] = hp_xstrdup(v);
                }
            }
        }
        free(line);
    }
    if (ldd && strstr(ldd, "musl"))
        s->musl = 1;
    if (getconf && hp_starts_with(getconf, "glibc "))
        parse_glibc(getconf, &s->glibc_major, &s->glibc_minor);
    else if (!s->musl && ldd && (strstr(ldd, "GLIBC") || strstr(ldd, "GNU libc"))) {
        /* the first line only: "ldd (Debian GLIBC 2.36-9) 2.36 Copyright ..." */
        char *first = hp_xstrdup(ldd);
        char *c = strstr(first, " Copyright");
        if (c)
            *c = '\0';
        parse_glibc(first, &s->glibc_major, &s->glibc_minor);
        free(first);
    }
    free(ldd);
    free(getconf);
    if (s->nlibs)
        qsort(s->libs, s->nlibs, sizeof(*s->libs), cmp_str);
    if (s->nfiles)
        qsort(s->files, s->nfiles, sizeof(*s->files), cmp_str);
    if (!s->arch || !s->home) {
        hp_deploy_site_release(s);
        return hp_err_set(err, HP_ESITE, "the site's probe printed no %s (is sh there a POSIX "
                          "shell?)", s->arch ? "home directory" : "architecture");
    }
    return 0;
}

/* uname -m spellings of one architecture */
static const char *arch_canon(const char *a)
{
    if (!strcmp(a, "amd64"))
        return "x86_64";
    if (!strcmp(a, "arm64"))
        return "aarch64";
    if (!strcmp(a, "i386") || !strcmp(a, "i486") || !strcmp(a, "i586"))
        return "i686";
    if (hp_starts_with(a, "armv7"))
        return "armv7l";
    return a;
}

/* Libraries that come with the C library itself. */
static int libc_part(const char *so)
{
    static const char *const parts[] = { "libc.so", "libm.so", "libpthread.so", "libdl.so",
                                         "librt.so", "libresolv.so", "libutil.so", "libanl.so",
                                         "ld-linux", "ld64.so", "ld.so", "libmvec.so", NULL };
    for (size_t i = 0; parts[i]; i++)
        if (hp_starts_with(so, parts[i]))
            return 1;
    return 0;
}

#define SEP(b) ((b)->len ? "; " : "")

int hp_deploy_decide(const struct hp_deploy_bin *b, const struct hp_deploy_site *s,
                     struct hp_buf *why)
{
    int n = 0;
    if (strcmp(arch_canon(b->arch), arch_canon(s->arch)) != 0) {
        hp_buf_addf(why, "%sthe binary is for %s, the site is %s", SEP(why), b->arch, s->arch);
        return 1;   /* nothing else is comparable */
    }
    int needs_glibc = b->glibc_major > 0;
    if (s->musl && needs_glibc) {
        n++;
        hp_buf_addf(why, "%sthe site's C library is musl, the binary needs glibc %d.%d",
                    SEP(why), b->glibc_major, b->glibc_minor);
    } else if (needs_glibc && s->glibc_major &&
               (s->glibc_major < b->glibc_major ||
                (s->glibc_major == b->glibc_major && s->glibc_minor < b->glibc_minor))) {
        n++;
        hp_buf_addf(why, "%sthe site has glibc %d.%d, the binary needs glibc %d.%d or newer",
                    SEP(why), s->glibc_major, s->glibc_minor,
                    b->glibc_major, b->glibc_minor);
    }
    if (!s->have_ldconfig || s->musl)
        return n;
    int missing = 0;
    for (size_t i = 0; i < b->nneeded; i++) {
        const char *so = b->needed[i];
        if (libc_part(so) ||
            (s->nlibs && bsearch(&so, s->libs, s->nlibs, sizeof(*s->libs), cmp_str)))
            continue;
        if (!missing++)
            hp_buf_addf(why, "%slibraries missing on the site (ldconfig -p): ",
                        SEP(why));
        else
            hp_buf_adds(why, ", ");
        hp_buf_adds(why, so);
    }
    return n + (missing > 0);
}

void hp_deploy_result_release(struct hp_deploy_result *r)
{
    free(r->path);
    free(r->link);
    free(r->name);
    free(r->version);
    hp_deploy_bin_release(&r->bin);
    hp_deploy_site_release(&r->site);
    memset(r, 0, sizeof(*r));
}

/* sh -c SCRIPT sh ARGS... on the site; 0 with *status, or -1 */
static int run_sh(struct hp_conn *c, const char *script, const char *const *args,
                  struct hp_buf *out, struct hp_buf *errout, int *status, struct hp_err *err)
{
    const char *argv[8] = { "sh", "-c", script, "sh" };
    size_t n = 4;
    for (size_t i = 0; args && args[i] && n < 7; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return hp_conn_exec(c, argv, NULL, 0, out, errout, status, 120, err);
}

int hp_deploy_probe(struct hp_conn *c, struct hp_deploy_result *r, struct hp_err *err)
{
    struct hp_buf out = HP_BUF_INIT, eo = HP_BUF_INIT;
    int status = 0, ret = -1;
    if (run_sh(c, hp_deploy_probe_script(), NULL, &out, &eo, &status, err) < 0)
        goto out;
    if (status != 0) {
        char *l = hp_first_line(eo.buf);
        hp_err_set(err, HP_ESITE, "probing the site failed (exit %d): %s", status, l);
        free(l);
        goto out;
    }
    if (hp_deploy_site_parse(out.buf, &r->site, err) < 0)
        goto out;
    r->link = hp_xasprintf("%s/" BIN_DIR_REL "/hpcport", r->site.home);
    ret = 0;
out:
    hp_buf_release(&out);
    hp_buf_release(&eo);
    return ret;
}

/* Run FILE version on the site: 0 with *version (first line), 1 when it
 * does not run (*why: its first line of errors), -1. */
static int trial(struct hp_conn *c, const char *path, char **version, char **why,
                 struct hp_err *err)
{
    struct hp_buf out = HP_BUF_INIT, eo = HP_BUF_INIT;
    const char *args[] = { path, NULL };
    int status = 0, ret = -1;
    if (run_sh(c, "chmod 755 \"$1\" && exec \"$1\" version", args, &out, &eo, &status, err) < 0)
        goto out;
    if (status != 0 || !hp_starts_with(out.buf, "hpcport ")) {
        *why = status ? hp_first_line(eo.len ? eo.buf : out.buf)
                      : hp_xasprintf("'version' printed '%s', not 'hpcport VERSION'",
                                     out.buf);
        if (status && !**why) {
            free(*why);
            *why = hp_xasprintf("exit status %d", status);
        }
        ret = 1;
        goto out;
    }
    *version = hp_first_line(out.buf);
    ret = 0;
out:
    hp_buf_release(&out);
    hp_buf_release(&eo);
    return ret;
}

static int refuse(struct hp_err *err, const char *site, const char *home, const char *why)
{
    return hp_err_set(err, HP_ESITE, "site '%s' cannot run this hpcport binary: %s; "
                      "build hpcport on the site instead: copy a checkout of its source "
                      "there (hpcport cp -r SRC %s:hpcport-src), then hpcport ssh %s -- sh -c "
                      "'cd hpcport-src && sh tools/install-deps.sh && meson setup build && "
                      "ninja -C build', and set remote.hpcport to "
                      "%s/hpcport-src/build/hpcport in the site's profile",
                      site, why, site, site, home);
}

/* The file name hpcport-VERSION-HASH12 from `version`'s line "hpcport V ..." */
static char *final_name(const char *version, const char *sha)
{
    const char *v = version + strlen("hpcport ");
    size_t n = strcspn(v, " ");
    char *ver = hp_xstrndup(v, n);
    for (char *q = ver; *q; q++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-", *q))
            *q = '_';
    char *name = hp_xasprintf("hpcport-%s-%.12s", *ver ? ver : "unknown", sha);
    free(ver);
    return name;
}

/* Point bin/hpcport at name, atomically (a new link renamed over it). */
static int relink(struct hp_conn *c, const struct hp_deploy_result *r, const char *from,
                  struct hp_err *err)
{
    char *dir = hp_xasprintf("%s/" BIN_DIR_REL, r->site.home);
    const char *args[] = { dir, from ? from : "", r->name, NULL };
    struct hp_buf eo = HP_BUF_INIT;
    int status = 0, ret = -1;
    if (run_sh(c, "cd \"$1\" || exit 1; if [ -n \"$2\" ]; then mv -f \"$2\" \"$3\" || exit 1; fi; "
               "t=.hpcport-link.$$; rm -f \"$t\"; ln -s \"$3\" \"$t\" && mv -f \"$t\" hpcport",
               args, NULL, &eo, &status, err) < 0)
        goto out;
    if (status != 0) {
        char *l = hp_first_line(eo.buf);
        hp_err_set(err, HP_ESITE, "installing %s in %s failed (exit %d): %s", r->name, dir,
                   status, l);
        free(l);
        goto out;
    }
    ret = 0;
out:
    hp_buf_release(&eo);
    free(dir);
    return ret;
}

static int remove_file(struct hp_conn *c, const char *path)
{
    const char *args[] = { path, NULL };
    struct hp_err e;
    int status;
    hp_err_init(&e);
    return run_sh(c, "rm -f \"$1\"", args, NULL, NULL, &status, &e);
}

int hp_deploy(struct hp_conn *c, const struct hp_deploy_opts *o, struct hp_deploy_result *r,
              struct hp_err *err)
{
    const char *bin = o->binary ? o->binary : "/proc/self/exe";
    struct hp_buf why = HP_BUF_INIT;
    char *trial_path = NULL, *bad = NULL, *tpart = NULL;
    const char *site = o->site ? o->site : c->site;
    int ret = -1;
    memset(r, 0, sizeof(*r));
    if (hp_deploy_bin_read(bin, &r->bin, err) < 0)
        goto out;
    if (hp_deploy_probe(c, r, err) < 0)
        goto out;
    if (hp_deploy_decide(&r->bin, &r->site, &why)) {
        refuse(err, site, r->site.home, why.buf);
        goto out;
    }
    if (o->dry_run) {
        ret = 0;
        goto out;
    }
    /* the same build already there: hpcport-*-HASH12 that runs */
    char *suffix = hp_xasprintf("-%.12s", r->bin.sha256);
    for (size_t i = 0; i < r->site.nfiles && !r->name; i++) {
        if (!hp_ends_with(r->site.files[i], suffix))
            continue;
        char *p = hp_xasprintf("%s/" BIN_DIR_REL "/%s", r->site.home, r->site.files[i]);
        char *ver = NULL, *w = NULL;
        int t = trial(c, p, &ver, &w, err);
        free(w);
        if (t < 0) {
            free(p);
            free(suffix);
            goto out;
        }
        if (t == 0) {
            r->name = hp_xstrdup(r->site.files[i]);
            r->path = p;
            r->version = ver;
        } else {
            free(p);
        }
    }
    free(suffix);
    if (!r->name) {
        tpart = hp_xasprintf(".trial-%.12s", r->bin.sha256);
        trial_path = hp_xasprintf("%s/" BIN_DIR_REL "/%s", r->site.home, tpart);
        if (hp_conn_put(c, bin, trial_path, HP_XFER_MODE, err) < 0) {
            hp_err_prefix(err, "uploading %s to site '%s'", bin, site);
            goto out;
        }
        r->uploaded = 1;
        int t = trial(c, trial_path, &r->version, &bad, err);
        if (t != 0) {
            remove_file(c, trial_path);
            if (t > 0)
                refuse(err, site, r->site.home, bad);
            goto out;
        }
        r->name = final_name(r->version, r->bin.sha256);
        r->path = hp_xasprintf("%s/" BIN_DIR_REL "/%s", r->site.home, r->name);
    }
    if (tpart || !r->site.current || strcmp(r->site.current, r->name) != 0) {
        if (relink(c, r, tpart, err) < 0) {
            if (trial_path)
                remove_file(c, trial_path);
            goto out;
        }
        r->relinked = 1;
        free(r->site.current);
        r->site.current = hp_xstrdup(r->name);
    }
    ret = 0;
out:
    free(trial_path);
    free(tpart);
    free(bad);
    hp_buf_release(&why);
    return ret;
}

int hp_deploy_prune(struct hp_conn *c, struct hp_deploy_result *r, char ***removed, size_t *n,
                    struct hp_err *err)
{
    *removed = NULL;
    *n = 0;
    if (!r->site.current)
        return 0;   /* nothing is current: keep everything */
    size_t alloc = 0;
    int ret = -1, status = 0;
    char *dir = hp_xasprintf("%s/" BIN_DIR_REL, r->site.home);
    const char *args[4] = { dir, NULL, NULL, NULL };
    struct hp_buf eo = HP_BUF_INIT;
    for (size_t i = 0; i < r->site.nfiles; i++) {
        const char *f = r->site.files[i];
        if (!strcmp(f, r->site.current) || !hp_starts_with(f, "hpcport-") || strchr(f, '/'))
            continue;
        args[1] = f;
        hp_buf_reset(&eo);
        if (run_sh(c, "cd \"$1\" && rm -f -- \"$2\"", args, NULL, &eo, &status, err) < 0)
            goto out;
        if (status != 0) {
            char *l = hp_first_line(eo.buf);
            hp_err_set(err, HP_ESITE, "removing %s/%s failed: %s", dir, f, l);
            free(l);
            goto out;
        }
        HP_ALLOC_GROW(*removed, *n + 1, alloc);
        (*removed)[(*n)++] = hp_xstrdup(f);
    }
    ret = 0;
out:
    hp_buf_release(&eo);
    free(dir);
    return ret;
}
