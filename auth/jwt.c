/* jwt.c - HS256 JWTs for slurmrestd (jwt.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "buf.h"
#include "jwt.h"
#include "util.h"
#include "banned.h"

#define KEY_MAX 4096

static void b64url(struct hp_buf *out, const unsigned char *p, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        hp_buf_addch(out, tab[(v >> 18) & 63]);
        hp_buf_addch(out, tab[(v >> 12) & 63]);
        if (i + 1 < n)
            hp_buf_addch(out, tab[(v >> 6) & 63]);
        if (i + 2 < n)
            hp_buf_addch(out, tab[v & 63]);
    }
}

/* The key: the whole file, as slurmctld reads it. */
static int read_key(const char *path, unsigned char *key, size_t *len, struct hp_err *err)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return hp_err_set(err, errno == ENOENT ? HP_EINPUT : HP_ESYS,
                          "cannot open the JWT key file '%s': %s", path, strerror(errno));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return hp_err_set(err, HP_EINPUT, "JWT key file '%s' is not a regular file", path);
    }
    if (st.st_mode & 077) {
        close(fd);
        return hp_err_set(err, HP_EINPUT, "JWT key file '%s' is readable by others (mode %04o): "
                          "it is a secret; run 'chmod 600 %s'", path,
                          (unsigned)(st.st_mode & 07777), path);
    }
    size_t n = 0;
    ssize_t r;
    while (n < KEY_MAX && (r = read(fd, key + n, KEY_MAX - n)) != 0) {
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            OPENSSL_cleanse(key, n);
            return hp_err_set(err, HP_ESYS, "reading the JWT key file '%s': %s", path,
                              strerror(e));
        }
        n += (size_t)r;
    }
    close(fd);
    if (n < 16) {
        OPENSSL_cleanse(key, n);
        return hp_err_set(err, HP_EINPUT, "JWT key file '%s' holds %zu bytes; an HS256 key "
                          "needs at least 16 (slurmctld's jwt_key has 32 or more)", path, n);
    }
    *len = n;
    return 0;
}

int hp_jwt_mint(const char *key_file, const char *user, int64_t lifetime, time_t now,
                char **token, struct hp_err *err)
{
    unsigned char *key = hp_xcalloc(1, KEY_MAX);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    size_t keylen = 0;
    struct hp_buf t = HP_BUF_INIT;
    int ret = -1;
    *token = NULL;
    if (read_key(key_file, key, &keylen, err) < 0)
        goto out;
    json_t *claims = json_pack("{s:I, s:I, s:s}", "iat", (json_int_t)now, "exp",
                               (json_int_t)(now + lifetime), "sun", user);
    char *cj = json_dumps(claims, JSON_COMPACT);
    json_decref(claims);
    static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    b64url(&t, (const unsigned char *)hdr, sizeof(hdr) - 1);
    hp_buf_addch(&t, '.');
    b64url(&t, (const unsigned char *)cj, strlen(cj));
    free(cj);
    if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)t.buf, t.len, mac,
              &maclen)) {
        hp_err_set(err, HP_ESYS, "HMAC-SHA256 failed (OpenSSL)");
        goto out;
    }
    hp_buf_addch(&t, '.');
    b64url(&t, mac, maclen);
    *token = hp_xstrdup(t.buf);
    ret = 0;
out:
    OPENSSL_cleanse(key, KEY_MAX);
    OPENSSL_cleanse(mac, sizeof(mac));
    free(key);
    OPENSSL_cleanse(t.buf, t.len);
    hp_buf_release(&t);
    return ret;
}

time_t hp_jwt_expiry(const char *token)
{
    const char *a = token ? strchr(token, '.') : NULL;
    const char *b = a ? strchr(a + 1, '.') : NULL;
    if (!b)
        return 0;
    size_t n = (size_t)(b - a - 1);
    unsigned char *raw = hp_xcalloc(1, n + 1);
    size_t k = 0;
    unsigned v = 0;
    int bits = 0;
    for (const char *p = a + 1; p < b; p++) {
        const char *tab = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        const char *q = strchr(tab, *p == '+' ? '-' : *p == '/' ? '_' : *p);
        if (!q || !*p)
            break;
        v = v << 6 | (unsigned)(q - tab);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            raw[k++] = (unsigned char)(v >> bits);
        }
    }
    json_t *c = json_loadb((const char *)raw, k, 0, NULL);
    free(raw);
    json_t *e = json_object_get(c, "exp");
    time_t exp = json_is_integer(e) ? (time_t)json_integer_value(e) : 0;
    json_decref(c);
    return exp;
}

void hp_jwt_free(char *token)
{
    if (!token)
        return;
    OPENSSL_cleanse(token, strlen(token));
    free(token);
}
