#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "util.h"
#include "banned.h"

static void oom(size_t n)
{
    fprintf(stderr, "hpcport: fatal: out of memory allocating %zu bytes\n", n);
    abort();
}

void *hp_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *hp_xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (!p)
        oom(nmemb * size);
    return p;
}

void *hp_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *hp_xstrdup(const char *s)
{
    return hp_xstrndup(s, strlen(s));
}

char *hp_xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = hp_xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *hp_first_line(const char *s)
{
    while (*s == '\n' || *s == ' ' || *s == '\t')
        s++;
    size_t n = strcspn(s, "\n");
    while (n && (s[n - 1] == '\r' || s[n - 1] == ' '))
        n--;
    return hp_xstrndup(s, n);
}

void hp_strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

char *hp_xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *p = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom(strlen(fmt));
    return p;
}

bool hp_starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool hp_ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

size_t hp_levenshtein(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 256 || lb > 256)
        return (size_t)-1;
    size_t row[257];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t cost = tolower((unsigned char)a[i - 1]) ==
                          tolower((unsigned char)b[j - 1]) ? 0 : 1;
            size_t v = prev + cost;
            if (row[j] + 1 < v)
                v = row[j] + 1;
            if (row[j - 1] + 1 < v)
                v = row[j - 1] + 1;
            row[j] = v;
            prev = cur;
        }
    }
    return row[lb];
}

const char *hp_suggest(const char *word, const char *const *candidates)
{
    const char *best = NULL;
    size_t bestd = (size_t)-1;
    size_t wl = strlen(word);
    for (size_t i = 0; candidates && candidates[i]; i++) {
        size_t d = hp_levenshtein(word, candidates[i]);
        if (d < bestd) {
            bestd = d;
            best = candidates[i];
        }
    }
    /* A plausible typo: at most a third of the word changed (at least 1,
     * at most 3 edits), or the word is a prefix of a candidate. */
    size_t limit = wl / 3 + 1;
    if (limit > 3)
        limit = 3;
    if (best && bestd <= limit && bestd < wl)
        return best;
    for (size_t i = 0; candidates && candidates[i]; i++)
        if (wl >= 3 && hp_starts_with(candidates[i], word))
            return candidates[i];
    return NULL;
}

static int parse_uint(const char **p, int64_t *out)
{
    const char *s = *p;
    int64_t v = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    while (isdigit((unsigned char)*s)) {
        if (v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*s - '0');
        s++;
    }
    *p = s;
    *out = v;
    return 0;
}

int64_t hp_parse_duration(const char *s)
{
    const char *p = s;
    int64_t v, total = 0;
    if (!*s)
        return -1;
    if (strchr(s, ':')) {
        /* [D-]HH:MM:SS or MM:SS or HH:MM:SS */
        int64_t days = 0, parts[3];
        int n = 0;
        const char *dash = strchr(s, '-');
        if (dash) {
            if (parse_uint(&p, &days) || p != dash)
                return -1;
            p++;
        }
        while (n < 3) {
            if (parse_uint(&p, &parts[n]))
                return -1;
            n++;
            if (*p == ':')
                p++;
            else
                break;
        }
        if (*p || n < 2)
            return -1;
        /* minutes and seconds are 0..59; the leading field may be larger */
        if (parts[n - 1] > 59 || (n == 3 && parts[1] > 59))
            return -1;
        if (n == 2)
            total = parts[0] * 60 + parts[1];
        else
            total = parts[0] * 3600 + parts[1] * 60 + parts[2];
        return days * 86400 + total;
    }
    if (parse_uint(&p, &v))
        return -1;
    if (!*p)
        return v;
    p = s;
    while (*p) {
        if (parse_uint(&p, &v))
            return -1;
        int64_t mul;
        switch (*p) {
        case 'd': mul = 86400; break;
        case 'h': mul = 3600; break;
        case 'm': mul = 60; break;
        case 's': mul = 1; break;
        default: return -1;
        }
        p++;
        if (v > INT64_MAX / mul || total > INT64_MAX - v * mul)
            return -1;
        total += v * mul;
    }
    return total;
}

void hp_format_duration(int64_t secs, char *buf, size_t len)
{
    if (secs < 0)
        secs = 0;
    int64_t d = secs / 86400, h = (secs / 3600) % 24, m = (secs / 60) % 60, s = secs % 60;
    if (d)
        snprintf(buf, len, "%lld-%02lld:%02lld:%02lld", (long long)d, (long long)h,
                 (long long)m, (long long)s);
    else
        snprintf(buf, len, "%02lld:%02lld:%02lld", (long long)h, (long long)m,
                 (long long)s);
}

int64_t hp_parse_memory_mb(const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0 || !isdigit((unsigned char)*s))
        return -1;
    double mul;
    switch (toupper((unsigned char)*end)) {
    case '\0': mul = 1; break;
    case 'K': mul = 1.0 / 1024; end++; break;
    case 'M': mul = 1; end++; break;
    case 'G': mul = 1024; end++; break;
    case 'T': mul = 1024.0 * 1024; end++; break;
    default: return -1;
    }
    if (*end == 'i')
        end++;
    if (toupper((unsigned char)*end) == 'B')
        end++;
    if (*end)
        return -1;
    double mb = v * mul;
    if (mb > 1e15)
        return -1;
    int64_t r = (int64_t)mb;
    if ((double)r < mb)
        r++;
    return r;
}

double hp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

double hp_wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

char *hp_path_join(const char *a, const char *b)
{
    if (!a || !*a || b[0] == '/')
        return hp_xstrdup(b);
    size_t la = strlen(a);
    return hp_xasprintf("%s%s%s", a, a[la - 1] == '/' ? "" : "/", b);
}

char *hp_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return hp_xstrdup(".");
    if (slash == path)
        return hp_xstrdup("/");
    return hp_xstrndup(path, (size_t)(slash - path));
}

int hp_mkdir_p(const char *path, unsigned mode)
{
    char *p = hp_xstrdup(path);
    for (char *s = p + 1; ; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, mode) < 0 && errno != EEXIST) {
                int e = errno;
                free(p);
                errno = e;
                return -1;
            }
            *s = c;
            if (!c)
                break;
        }
    }
    free(p);
    struct stat st;
    if (stat(path, &st) < 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

int hp_read_file(const char *path, size_t max, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        errno = EISDIR;
        return -1;
    }
    if (max && S_ISREG(st.st_mode) && (size_t)st.st_size > max) {
        close(fd);
        errno = EFBIG;
        return -1;
    }
    size_t alloc = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 4096, n = 0;
    char *buf = hp_xmalloc(alloc);
    for (;;) {
        if (n + 1 >= alloc) {
            alloc *= 2;
            buf = hp_xrealloc(buf, alloc);
        }
        ssize_t r = read(fd, buf + n, alloc - n - 1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            free(buf);
            close(fd);
            errno = e;
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (max && n > max) {
            free(buf);
            close(fd);
            errno = EFBIG;
            return -1;
        }
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    if (len)
        *len = n;
    return 0;
}

static char *xdg_dir(const char *var, const char *fallback)
{
    const char *v = getenv(var);
    if (v && v[0] == '/')
        return hp_xasprintf("%s/hpcport", v);
    const char *home = getenv("HOME");
    if (!home || !*home)
        home = "/tmp";
    return hp_xasprintf("%s/%s/hpcport", home, fallback);
}

char *hp_config_dir(void)
{
    return xdg_dir("XDG_CONFIG_HOME", ".config");
}

char *hp_state_dir(void)
{
    return xdg_dir("XDG_STATE_HOME", ".local/state");
}

char *hp_data_dir(void)
{
    return xdg_dir("XDG_DATA_HOME", ".local/share");
}

int hp_write_full(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

int hp_read_full(int fd, void *p, size_t n)
{
    char *c = p;
    while (n) {
        ssize_t r = read(fd, c, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = 0;
            return -1;
        }
        c += r;
        n -= (size_t)r;
    }
    return 0;
}

char *hp_self_exe(void)
{
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    return hp_xstrdup(buf);
}
