/* util.h - allocation helpers that never return NULL, and small string helpers.
 *
 * Out-of-memory is not recoverable for a command-line tool that holds no
 * partial state in memory only: hp_x* print one line and abort(). */
#ifndef HP_UTIL_H
#define HP_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

void *hp_xmalloc(size_t n);
void *hp_xcalloc(size_t nmemb, size_t size);
void *hp_xrealloc(void *p, size_t n);
char *hp_xstrdup(const char *s);
char *hp_xstrndup(const char *s, size_t n);
/* The first non-blank line of a command's output, trimmed (new string):
 * what an error message quotes. */
char *hp_first_line(const char *s);
/* Printf into a freshly allocated string. */
/* Free a NULL-terminated array of strings and the strings (NULL is fine). */
void hp_strv_free(char **v);
char *hp_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Grow *arr (of elements of size elsz) so it holds at least n elements. */
#define HP_ALLOC_GROW(arr, n, alloc)                                         \
    do {                                                                     \
        if ((size_t)(n) > (alloc)) {                                         \
            size_t hp__na = (alloc) ? (alloc) * 2 : 8;                       \
            while (hp__na < (size_t)(n)) hp__na *= 2;                        \
            (arr) = hp_xrealloc((arr), hp__na * sizeof(*(arr)));             \
            (alloc) = hp__na;                                                \
        }                                                                    \
    } while (0)

bool hp_starts_with(const char *s, const char *prefix);
bool hp_ends_with(const char *s, const char *suffix);

/* Damerau-free Levenshtein distance, for "did you mean" suggestions. */
size_t hp_levenshtein(const char *a, const char *b);
/* Closest candidate to word among a NULL-terminated list, or NULL if none is
 * close enough to be a plausible typo. Returned pointer is borrowed. */
const char *hp_suggest(const char *word, const char *const *candidates);

/* Parse a duration: "90" (seconds), "90s", "15m", "1h30m", "2d", "HH:MM:SS",
 * "MM:SS", "D-HH:MM:SS". Returns seconds or -1 on bad syntax. */
int64_t hp_parse_duration(const char *s);
/* Format seconds as Slurm-style [D-]HH:MM:SS into buf (at least 32 bytes). */
void hp_format_duration(int64_t secs, char *buf, size_t len);
/* Parse a memory size: "512M", "8G", "8GB", "1.5T", "1024" (MiB). Returns MiB
 * or -1 on bad syntax. Units are binary (K=KiB...). */
int64_t hp_parse_memory_mb(const char *s);

/* Monotonic time in seconds (double). */
double hp_now(void);
/* Wall-clock time in seconds since the epoch. */
double hp_wall_now(void);

/* Path helpers. hp_path_join returns a new string. */
char *hp_path_join(const char *a, const char *b);
/* Directory part of path (new string); "." for a bare name. */
char *hp_dirname(const char *path);
/* mkdir -p with mode; 0 on success, -1 with errno. */
int hp_mkdir_p(const char *path, unsigned mode);
/* Read a whole file (up to max bytes; larger -> -1 with errno=EFBIG). *out is
 * NUL-terminated; caller frees. */
int hp_read_file(const char *path, size_t max, char **out, size_t *len);

/* write(2)/read(2) all n bytes, retrying on EINTR and short counts. 0, or -1
 * (errno set; a read that meets EOF first: -1 with errno 0). */
int hp_write_full(int fd, const void *p, size_t n);
int hp_read_full(int fd, void *p, size_t n);

/* XDG directories for hpcport (new strings): $XDG_CONFIG_HOME/hpcport,
 * $XDG_STATE_HOME/hpcport, $XDG_DATA_HOME/hpcport. */
char *hp_config_dir(void);
char *hp_state_dir(void);
char *hp_data_dir(void);
/* The absolute path of the running program (/proc/self/exe), a new string,
 * or NULL. */
char *hp_self_exe(void);

#endif
