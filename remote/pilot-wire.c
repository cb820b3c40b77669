/* pilot-wire.c - frames, HMAC and atomic file writes shared by agent and pilot. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "pilot-wire.h"
#include "util.h"
#include "banned.h"

int hp_wire_send(int fd, json_t *obj, struct hp_err *err)
{
    char *s = json_dumps(obj, JSON_COMPACT);
    if (!s)
        return hp_err_set(err, HP_EINTERNAL, "cannot encode a protocol message");
    size_t n = strlen(s);
    unsigned char *frame = hp_xmalloc(n + 4);
    frame[0] = (unsigned char)(n >> 24);
    frame[1] = (unsigned char)(n >> 16);
    frame[2] = (unsigned char)(n >> 8);
    frame[3] = (unsigned char)n;
    memcpy(frame + 4, s, n);
    free(s);
    int r = hp_write_full(fd, frame, n + 4);
    free(frame);
    if (r < 0)
        return hp_err_errno(err, "send to peer");
    return 0;
}

int hp_wire_take(struct hp_buf *b, json_t **out, struct hp_err *err)
{
    *out = NULL;
    if (b->len < 4)
        return 0;
    const unsigned char *p = (const unsigned char *)b->buf;
    uint32_t n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    if (n > HP_WIRE_MAX)
        return hp_err_set(err, HP_EINPUT, "protocol frame of %u bytes is too large", n);
    if (b->len < 4 + (size_t)n)
        return 0;
    json_error_t je;
    json_t *j = json_loadb(b->buf + 4, n, 0, &je);
    memmove(b->buf, b->buf + 4 + n, b->len - 4 - n);
    hp_buf_setlen(b, b->len - 4 - n);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return hp_err_set(err, HP_EINPUT, "bad protocol message (not a JSON object)");
    }
    *out = j;
    return 1;
}

int hp_wire_recv(int fd, int timeout_ms, json_t **out, struct hp_err *err)
{
    struct hp_buf b = HP_BUF_INIT;
    unsigned char hdr[4];
    size_t got = 0;
    double deadline = timeout_ms < 0 ? 0 : hp_now() + timeout_ms / 1000.0;
    int ret = -1;
    *out = NULL;
    size_t want = 4;
    while (got < want) {
        if (timeout_ms >= 0) {
            int left = (int)((deadline - hp_now()) * 1000);
            struct pollfd pf = { .fd = fd, .events = POLLIN };
            int pr = left > 0 ? poll(&pf, 1, left) : 0;
            if (pr < 0 && errno == EINTR)
                continue;
            if (pr <= 0) {
                hp_err_set(err, HP_ETIMEOUT, "no answer from the agent in %d ms", timeout_ms);
                goto out;
            }
        }
        ssize_t r;
        if (got < 4)
            r = read(fd, hdr + got, 4 - got);
        else
            r = read(fd, b.buf + (got - 4), want - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            hp_err_set(err, HP_EUNAVAIL, "connection closed by peer");
            goto out;
        }
        got += (size_t)r;
        if (got == 4 && want == 4) {
            uint32_t n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
                         (uint32_t)hdr[2] << 8 | hdr[3];
            if (n > HP_WIRE_MAX) {
                hp_err_set(err, HP_EINPUT, "protocol frame of %u bytes is too large", n);
                goto out;
            }
            hp_buf_grow(&b, n + 1);
            want = 4 + (size_t)n;
        }
    }
    json_error_t je;
    json_t *j = json_loadb(b.buf, want - 4, 0, &je);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        hp_err_set(err, HP_EINPUT, "bad protocol message (not a JSON object)");
        goto out;
    }
    *out = j;
    ret = 0;
out:
    hp_buf_release(&b);
    return ret;
}

void hp_wire_mac(const void *key, size_t keylen, const char *msg, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, strlen(msg), md, &mdlen);
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    hex[64] = '\0';
    OPENSSL_cleanse(md, sizeof(md));
}

int hp_wire_mac_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb || la != 64)
        return 0;
    return CRYPTO_memcmp(a, b, la) == 0;
}

int hp_wire_write_atomic(const char *path, const char *data, size_t len, unsigned mode,
                         struct hp_err *err)
{
    char *tmp = hp_xasprintf("%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        hp_err_errno(err, "create '%s'", tmp);
        free(tmp);
        return -1;
    }
    if (hp_write_full(fd, data, len) < 0 || close(fd) < 0) {
        hp_err_errno(err, "write '%s'", tmp);
        unlink(tmp);
        free(tmp);
        return -1;
    }
    if (rename(tmp, path) < 0) {
        hp_err_errno(err, "rename '%s' to '%s'", tmp, path);
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}
