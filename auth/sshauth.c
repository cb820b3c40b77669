/* sshauth.c - the client side of SSH user authentication.
 *
 * libssh2 1.10 first asks the server whether it would accept a public key
 * and only signs (loading the private key) when it would, so a key file is
 * tried without its passphrase first: "Callback returned error" after that
 * query means the server wants this key and the key is encrypted, and only
 * then is the passphrase asked. A signed request that still fails is how a
 * partial success (AuthenticationMethods publickey,keyboard-interactive)
 * looks through libssh2, so the list of methods the server still accepts is
 * fetched again after each method. */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "sshauth.h"
#include "auth.h"
#include "buf.h"
#include "util.h"
#include "banned.h"

/* ------------------------------------------------------------ allocator */

void *hp_ssh_alloc(size_t n, void **abstract)
{
    (void)abstract;
    return malloc(n ? n : 1);
}

void *hp_ssh_realloc(void *p, size_t n, void **abstract)
{
    struct hp_ssh_sessctx *c = abstract ? *abstract : NULL;
    if (c && c->scrub && p) {
        /* realloc may move the block: copy into a fresh one and wipe the
         * old one */
        size_t old = malloc_usable_size(p);
        void *q = malloc(n ? n : 1);
        if (!q)
            return NULL;
        memcpy(q, p, old < n ? old : n);
        OPENSSL_cleanse(p, old);
        free(p);
        return q;
    }
    return realloc(p, n ? n : 1);
}

void hp_ssh_free(void *p, void **abstract)
{
    struct hp_ssh_sessctx *c = abstract ? *abstract : NULL;
    if (p && c && c->scrub)
        OPENSSL_cleanse(p, malloc_usable_size(p));
    free(p);
}

/* ------------------------------------------------------------ helpers */

#define NB(rc, call)                                                         \
    do {                                                                     \
        while (((rc) = (call)) == LIBSSH2_ERROR_EAGAIN)                      \
            if (a->wait(a->wait_ud, s, err) < 0)                             \
                return -1;                                                   \
    } while (0)

static const char *last_error(LIBSSH2_SESSION *s, int *code)
{
    char *msg = NULL;
    int c = libssh2_session_last_error(s, &msg, NULL, 0);
    if (code)
        *code = c;
    return msg ? msg : "unknown error";
}

static int transport_error(int rc)
{
    return rc == LIBSSH2_ERROR_SOCKET_SEND || rc == LIBSSH2_ERROR_SOCKET_RECV ||
           rc == LIBSSH2_ERROR_SOCKET_DISCONNECT || rc == LIBSSH2_ERROR_SOCKET_TIMEOUT ||
           rc == LIBSSH2_ERROR_TIMEOUT || rc == LIBSSH2_ERROR_KEX_FAILURE ||
           rc == LIBSSH2_ERROR_DECRYPT || rc == LIBSSH2_ERROR_BAD_USE;
}

static int lost(LIBSSH2_SESSION *s, const struct hp_sshauth *a, struct hp_err *err)
{
    return hp_err_set(err, HP_ESITE, "connection to %s lost during authentication: %s",
                      a->where, last_error(s, NULL));
}

static int has_word(const char *list, const char *word)
{
    size_t wl = strlen(word);
    for (const char *p = list; p && *p;) {
        const char *c = strchr(p, ',');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        if (l == wl && !strncmp(p, word, wl))
            return 1;
        p += l + (c ? 1 : 0);
    }
    return 0;
}

/* The methods the server accepts now (new string), "" once authenticated;
 * NULL with err on a transport error. */
static char *method_list(LIBSSH2_SESSION *s, const struct hp_sshauth *a, struct hp_err *err)
{
    struct hp_ssh_sessctx *ctx = *libssh2_session_abstract(s);
    /* libssh2 1.10 keeps the list it returned until the session is freed,
     * and forgets (leaks) it when asked again: free the old one first (the
     * new request replaces libssh2's pointer to it at once) */
    if (ctx->list_prev) {
        libssh2_free(s, ctx->list_prev);
        ctx->list_prev = NULL;
    }
    for (;;) {
        char *l = libssh2_userauth_list(s, a->user, (unsigned)strlen(a->user));
        if (l) {
            ctx->list_prev = l;
            return hp_xstrdup(l);
        }
        if (libssh2_userauth_authenticated(s))
            return hp_xstrdup("");
        int code;
        const char *msg = last_error(s, &code);
        if (code == LIBSSH2_ERROR_EAGAIN) {
            if (a->wait(a->wait_ud, s, err) < 0)
                return NULL;
            continue;
        }
        hp_err_set(err, HP_ESITE, "%s did not answer the authentication request: %s", a->where,
                   msg);
        return NULL;
    }
}

static unsigned char *b64_decode(const char *in, size_t *outlen)
{
    struct hp_buf clean = HP_BUF_INIT;
    for (const char *p = in; *p; p++)
        if (*p != '\n' && *p != '\r' && *p != ' ' && *p != '\t')
            hp_buf_addch(&clean, *p);
    if (clean.len % 4) {
        hp_buf_release(&clean);
        return NULL;
    }
    unsigned char *out = hp_xmalloc(clean.len / 4 * 3 + 1);
    int n = EVP_DecodeBlock(out, (unsigned char *)clean.buf, (int)clean.len);
    if (n < 0) {
        free(out);
        hp_buf_release(&clean);
        return NULL;
    }
    size_t pad = 0;
    if (clean.len && clean.buf[clean.len - 1] == '=')
        pad++;
    if (clean.len > 1 && clean.buf[clean.len - 2] == '=')
        pad++;
    *outlen = (size_t)n - pad;
    hp_buf_release(&clean);
    return out;
}

static int get_string(const unsigned char **p, const unsigned char *end, const unsigned char **s,
                      uint32_t *len)
{
    if (end - *p < 4)
        return -1;
    uint32_t l = (uint32_t)(*p)[0] << 24 | (uint32_t)(*p)[1] << 16 | (uint32_t)(*p)[2] << 8 |
                 (*p)[3];
    *p += 4;
    if ((size_t)(end - *p) < l)
        return -1;
    *s = *p;
    *len = l;
    *p += l;
    return 0;
}

struct idkey {
    char *path;
    char *priv;           /* file contents (wiped on release) */
    size_t privlen;
    char *pubtext;        /* "type base64" or NULL */
    unsigned char *blob;  /* decoded public key, or NULL */
    size_t bloblen;
    int encrypted;
};

static void idkey_release(struct idkey *k)
{
    if (k->priv) {
        OPENSSL_cleanse(k->priv, k->privlen);
        free(k->priv);
    }
    free(k->pubtext);
    free(k->blob);
    free(k->path);
    memset(k, 0, sizeof(*k));
}

/* The public half of an openssh-key-v1 file, and whether it is encrypted. */
static void parse_openssh_key(struct idkey *k)
{
    const char *begin = "-----BEGIN OPENSSH PRIVATE KEY-----";
    const char *b = strstr(k->priv, begin), *e = strstr(k->priv, "-----END OPENSSH");
    if (!b || !e || e < b)
        return;
    char *body = hp_xstrndup(b + strlen(begin), (size_t)(e - b - strlen(begin)));
    size_t len = 0;
    unsigned char *raw = b64_decode(body, &len);
    OPENSSL_cleanse(body, strlen(body));
    free(body);
    if (!raw)
        return;
    const unsigned char *p = raw, *end = raw + len, *s;
    uint32_t l;
    const char magic[] = "openssh-key-v1";
    if (len < sizeof(magic) || memcmp(p, magic, sizeof(magic)))
        goto out;
    p += sizeof(magic);
    if (get_string(&p, end, &s, &l) < 0)
        goto out;
    k->encrypted = !(l == 4 && !memcmp(s, "none", 4));
    if (get_string(&p, end, &s, &l) < 0 || get_string(&p, end, &s, &l) < 0 || end - p < 4)
        goto out;
    p += 4;     /* number of keys */
    const unsigned char *blob;
    uint32_t bl;
    if (get_string(&p, end, &blob, &bl) < 0)
        goto out;
    const unsigned char *q = blob, *tname;
    uint32_t tl;
    if (get_string(&q, blob + bl, &tname, &tl) < 0)
        goto out;
    k->blob = hp_xmalloc(bl);
    memcpy(k->blob, blob, bl);
    k->bloblen = bl;
    char *enc = hp_xmalloc(4 * ((bl + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)enc, blob, (int)bl);
    k->pubtext = hp_xasprintf("%.*s %s", (int)tl, (const char *)tname, enc);
    free(enc);
out:
    OPENSSL_cleanse(raw, len);
    free(raw);
}

/* Load a key file and what can be known of it without its passphrase. */
static int load_idkey(const char *path, struct idkey *k)
{
    memset(k, 0, sizeof(*k));
    if (hp_read_file(path, 1 << 20, &k->priv, &k->privlen) < 0)
        return -1;
    k->path = hp_xstrdup(path);
    if (strstr(k->priv, "ENCRYPTED"))
        k->encrypted = 1;       /* PEM: Proc-Type: 4,ENCRYPTED or PKCS#8 */
    char *pubpath = hp_xasprintf("%s.pub", path);
    char *pub = NULL;
    size_t pl;
    if (hp_read_file(pubpath, 1 << 20, &pub, &pl) == 0) {
        char *nl = strchr(pub, '\n');
        if (nl)
            *nl = '\0';
        k->pubtext = pub;
        char *sp = strchr(pub, ' ');
        if (sp) {
            char *b = hp_xstrdup(sp + 1), *sp2 = strchr(b, ' ');
            if (sp2)
                *sp2 = '\0';
            k->blob = b64_decode(b, &k->bloblen);
            free(b);
        }
    }
    free(pubpath);
    if (!k->pubtext || !k->blob) {
        free(k->pubtext);
        free(k->blob);
        k->pubtext = NULL;
        k->blob = NULL;
        parse_openssh_key(k);
    } else {
        struct idkey tmp = { .priv = k->priv };
        parse_openssh_key(&tmp);
        k->encrypted |= tmp.encrypted;
        free(tmp.pubtext);
        free(tmp.blob);
    }
    return 0;
}

int hp_sshauth_key_encrypted(const char *path)
{
    struct idkey k;
    if (load_idkey(path, &k) < 0)
        return -1;
    int enc = k.encrypted;
    idkey_release(&k);
    return enc;
}

static char **identity_paths(const struct hp_sshauth *a)
{
    size_t n = 0;
    for (; a->identity_files && a->identity_files[n]; n++)
        ;
    char **v;
    if (n) {
        v = hp_xcalloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++)
            v[i] = hp_xstrdup(a->identity_files[i]);
    } else {
        const char *home = getenv("HOME");
        static const char *const names[] = { "id_ed25519", "id_ecdsa", "id_rsa" };
        v = hp_xcalloc(4, sizeof(char *));
        for (size_t i = 0; i < 3; i++)
            v[i] = hp_xasprintf("%s/.ssh/%s", home ? home : "", names[i]);
    }
    return v;
}

static void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* ------------------------------------------------------------ publickey */

struct pk_state {
    int tried;          /* keys offered */
    int signed_fail;    /* a signed request failed: maybe a partial success */
    struct hp_buf notes;
};

static int try_agent(LIBSSH2_SESSION *s, const struct hp_sshauth *a, struct idkey *ids,
                     size_t nids, struct pk_state *st, struct hp_err *err)
{
    const char *sock = getenv("SSH_AUTH_SOCK");
    if (!sock || !*sock)
        return 0;
    LIBSSH2_AGENT *ag = libssh2_agent_init(s);
    if (!ag)
        return 0;
    int ret = 0;
    if (libssh2_agent_connect(ag) != 0) {
        hp_buf_addf(&st->notes, "; ssh-agent at %s did not answer", sock);
        goto out;
    }
    if (libssh2_agent_list_identities(ag) != 0)
        goto out_disc;
    struct libssh2_agent_publickey *id = NULL, *prev = NULL;
    int offered = 0;
    while (libssh2_agent_get_identity(ag, &id, prev) == 0) {
        prev = id;
        if (a->identities_only) {
            int match = 0;
            for (size_t i = 0; i < nids && !match; i++)
                match = ids[i].blob && ids[i].bloblen == id->blob_len &&
                        !memcmp(ids[i].blob, id->blob, id->blob_len);
            if (!match)
                continue;
        }
        offered++;
        st->tried++;
        int rc;
        while ((rc = libssh2_agent_userauth(ag, a->user, id)) == LIBSSH2_ERROR_EAGAIN)
            if (a->wait(a->wait_ud, s, err) < 0) {
                ret = -1;
                goto out_disc;
            }
        if (rc == 0 || libssh2_userauth_authenticated(s))
            break;
        if (transport_error(rc)) {
            ret = lost(s, a, err);
            goto out_disc;
        }
        if (rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED) {
            st->signed_fail = 1;
            break;      /* accepted key, then more is needed: stop offering */
        }
    }
    hp_buf_addf(&st->notes, "; agent keys offered: %d", offered);
out_disc:
    libssh2_agent_disconnect(ag);
out:
    libssh2_agent_free(ag);
    return ret;
}

static int try_file(LIBSSH2_SESSION *s, const struct hp_sshauth *a, struct idkey *k,
                    struct pk_state *st, struct hp_err *err)
{
    struct hp_ssh_sessctx *ctx = *libssh2_session_abstract(s);
    char *pass = NULL;
    int ret = 0;
    for (int attempt = 0; attempt < 4; attempt++) {
        int rc;
        st->tried++;
        ctx->scrub = 1;
        NB(rc, libssh2_userauth_publickey_frommemory(
                   s, a->user, strlen(a->user), k->pubtext, k->pubtext ? strlen(k->pubtext) : 0,
                   k->priv, k->privlen, pass ? pass : (k->encrypted ? "" : NULL)));
        hp_secret_free(pass);
        pass = NULL;
        if (rc == 0 || libssh2_userauth_authenticated(s))
            return 0;
        if (transport_error(rc))
            return lost(s, a, err);
        const char *msg = last_error(s, NULL);
        int needs_key = rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED &&
                        strstr(msg, "Callback returned error");
        /* without a public half, libssh2 must decrypt the key even to offer it */
        if (!k->pubtext && k->encrypted && rc != LIBSSH2_ERROR_AUTHENTICATION_FAILED)
            needs_key = 1;
        if (rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED && !needs_key) {
            st->signed_fail = 1;
            return 0;
        }
        if (!needs_key) {
            if (rc != LIBSSH2_ERROR_AUTHENTICATION_FAILED)
                hp_buf_addf(&st->notes, "; %s: %s", k->path, msg);
            return 0;   /* not accepted: next key */
        }
        if (!k->encrypted) {
            hp_buf_addf(&st->notes, "; %s: cannot be read (%s)", k->path, msg);
            return 0;
        }
        if (attempt == 3) {
            ret = hp_err_set(err, HP_ESITE, "wrong passphrase for key '%s' (3 tries)", k->path);
            break;
        }
        char *prompt = hp_xasprintf("Enter passphrase for key '%s': ", k->path);
        int r = hp_auth_ask(prompt, 0, &pass, err);
        free(prompt);
        if (r < 0) {
            hp_err_prefix(err, "key '%s' is encrypted", k->path);
            return -1;
        }
    }
    hp_secret_free(pass);
    return ret;
}

static int do_publickey(LIBSSH2_SESSION *s, const struct hp_sshauth *a, struct hp_buf *tried,
                        struct hp_err *err)
{
    char **paths = identity_paths(a);
    size_t n = 0;
    for (; paths[n]; n++)
        ;
    struct idkey *ids = hp_xcalloc(n + 1, sizeof(*ids));
    size_t nids = 0;
    struct pk_state st = { .notes = HP_BUF_INIT };
    int explicit_ids = a->identity_files && a->identity_files[0];
    for (size_t i = 0; i < n; i++) {
        if (load_idkey(paths[i], &ids[nids]) == 0)
            nids++;
        else if (explicit_ids)
            hp_buf_addf(&st.notes, "; %s: %s", paths[i], strerror(errno));
    }
    int ret = try_agent(s, a, ids, nids, &st, err);
    for (size_t i = 0; ret == 0 && i < nids && !st.signed_fail; i++) {
        if (libssh2_userauth_authenticated(s))
            break;
        ret = try_file(s, a, &ids[i], &st, err);
    }
    struct hp_buf files = HP_BUF_INIT;
    for (size_t i = 0; i < nids; i++)
        hp_buf_addf(&files, "%s%s", i ? ", " : "; key files: ", ids[i].path);
    hp_buf_addf(tried, "%spublickey (%d key%s offered%s%s)", tried->len ? ", " : "", st.tried,
                st.tried == 1 ? "" : "s", files.buf, st.notes.buf);
    hp_buf_release(&files);
    for (size_t i = 0; i < nids; i++)
        idkey_release(&ids[i]);
    free(ids);
    strv_free(paths);
    hp_buf_release(&st.notes);
    return ret;
}

/* ------------------------------------------------------------ keyboard-interactive */

static void kbd_callback(const char *name, int name_len, const char *instruction,
                         int instruction_len, int num_prompts,
                         const LIBSSH2_USERAUTH_KBDINT_PROMPT *prompts,
                         LIBSSH2_USERAUTH_KBDINT_RESPONSE *responses, void **abstract)
{
    (void)name;
    (void)name_len;
    (void)instruction;
    (void)instruction_len;
    struct hp_ssh_sessctx *ctx = *abstract;
    const struct hp_sshauth *a = ctx->auth;
    for (int i = 0; i < num_prompts; i++) {
        responses[i].text = NULL;
        responses[i].length = 0;
        char *ptext = hp_xstrndup((const char *)prompts[i].text, prompts[i].length);
        char *answer = NULL;
        int r;
        if (ctx->kbd_err->code) {
            r = -1;     /* an earlier prompt failed: answer nothing */
        } else if (hp_auth_is_otp_prompt(ptext) && a->otp_command) {
            r = hp_auth_run_otp(a->otp_command, &answer, ctx->kbd_err);
            ctx->kbd_otp = ctx->kbd_from_command = 1;
        } else {
            ctx->kbd_otp |= hp_auth_is_otp_prompt(ptext);
            char *full = hp_xasprintf("(%s) %s", a->where, ptext);
            r = hp_auth_ask(full, prompts[i].echo, &answer, ctx->kbd_err);
            free(full);
        }
        free(ptext);
        if (r == 0) {
            size_t l = strlen(answer);
            /* libssh2 frees the text with our hp_ssh_free, which wipes it
             * (scrub is on during authentication) */
            responses[i].text = hp_ssh_alloc(l + 1, abstract);
            memcpy(responses[i].text, answer, l + 1);
            responses[i].length = (unsigned)l;
            ctx->kbd_answered++;
        }
        hp_secret_free(answer);
    }
}

static int do_kbdint(LIBSSH2_SESSION *s, const struct hp_sshauth *a, struct hp_buf *tried,
                     struct hp_err *err)
{
    struct hp_ssh_sessctx *ctx = *libssh2_session_abstract(s);
    struct hp_err kerr;
    int tries = a->otp_command ? 1 : 3;
    hp_buf_addf(tried, "%skeyboard-interactive", tried->len ? ", " : "");
    for (int t = 0; t < tries; t++) {
        hp_err_init(&kerr);
        ctx->kbd_err = &kerr;
        ctx->kbd_answered = ctx->kbd_otp = ctx->kbd_from_command = 0;
        ctx->scrub = 1;
        int rc;
        NB(rc, libssh2_userauth_keyboard_interactive_ex(s, a->user, (unsigned)strlen(a->user),
                                                        kbd_callback));
        ctx->kbd_err = NULL;
        if (rc == 0 || libssh2_userauth_authenticated(s))
            return 0;
        if (transport_error(rc))
            return lost(s, a, err);
        if (kerr.code) {
            hp_err_set(err, kerr.code, "%s", kerr.msg);
            hp_err_prefix(err, "keyboard-interactive authentication to %s", a->where);
            return -1;
        }
        if (ctx->kbd_from_command) {
            return hp_err_set(err, HP_ESITE, "keyboard-interactive authentication to %s failed: "
                              "the one-time code from login.otp_command was refused (check the "
                              "command and the clock; a code can be used only once)", a->where);
        }
        if (!ctx->kbd_answered)
            break;  /* the server asked nothing we could answer */
        hp_auth_notify("%s: keyboard-interactive authentication failed%s", a->where,
                       t + 1 < tries ? "; try again" : "");
    }
    if (ctx->kbd_otp)
        hp_buf_adds(tried, " (one-time code refused)");
    return 0;
}

static int do_password(LIBSSH2_SESSION *s, const struct hp_sshauth *a, struct hp_buf *tried,
                       struct hp_err *err)
{
    struct hp_ssh_sessctx *ctx = *libssh2_session_abstract(s);
    hp_buf_addf(tried, "%spassword", tried->len ? ", " : "");
    for (int t = 0; t < 3; t++) {
        char *prompt = hp_xasprintf("%s's password: ", a->where), *pw = NULL;
        int r = hp_auth_ask(prompt, 0, &pw, err);
        free(prompt);
        if (r < 0)
            return -1;
        ctx->scrub = 1;
        int rc;
        while ((rc = libssh2_userauth_password_ex(s, a->user, (unsigned)strlen(a->user), pw,
                                                  (unsigned)strlen(pw), NULL)) ==
               LIBSSH2_ERROR_EAGAIN)
            if (a->wait(a->wait_ud, s, err) < 0) {
                hp_secret_free(pw);
                return -1;
            }
        hp_secret_free(pw);
        if (rc == 0 || libssh2_userauth_authenticated(s))
            return 0;
        if (transport_error(rc))
            return lost(s, a, err);
        hp_auth_notify("%s: wrong password", a->where);
    }
    return 0;
}

/* ------------------------------------------------------------ driver */

int hp_sshauth_run(LIBSSH2_SESSION *s, const struct hp_sshauth *a, struct hp_err *err)
{
    static const char *const dflt[] = { "publickey", "keyboard-interactive", NULL };
    const char *const *methods = a->methods && a->methods[0] ? a->methods : dflt;
    struct hp_ssh_sessctx *ctx = *libssh2_session_abstract(s);
    struct hp_buf tried = HP_BUF_INIT;
    int ret = -1;
    ctx->auth = a;
    ctx->scrub = 1;
    char *allowed = method_list(s, a, err);
    if (!allowed)
        goto out;
    for (size_t i = 0; methods[i] && !libssh2_userauth_authenticated(s); i++) {
        const char *m = methods[i];
        if (!has_word(allowed, m))
            continue;
        int r = 0;
        if (!strcmp(m, "publickey"))
            r = do_publickey(s, a, &tried, err);
        else if (!strcmp(m, "keyboard-interactive"))
            r = do_kbdint(s, a, &tried, err);
        else if (!strcmp(m, "password"))
            r = do_password(s, a, &tried, err);
        else
            continue;
        if (r < 0)
            goto out;
        if (libssh2_userauth_authenticated(s))
            break;
        /* partial success changes what the server accepts next, and may
         * allow a method listed earlier again */
        free(allowed);
        allowed = method_list(s, a, err);
        if (!allowed)
            goto out;
        if (!allowed[0])
            break;
    }
    if (!libssh2_userauth_authenticated(s)) {
        /* name a method the server would take that the profile leaves out */
        struct hp_buf hint = HP_BUF_INIT;
        static const char *const known[] = { "publickey", "keyboard-interactive", "password",
                                             NULL };
        for (size_t k = 0; known[k]; k++) {
            int listed = 0;
            for (size_t i = 0; methods[i]; i++)
                listed |= !strcmp(methods[i], known[k]);
            if (!listed && has_word(allowed, known[k]))
                hp_buf_addf(&hint, "; the server also accepts %s: add it to login.auth",
                            known[k]);
        }
        hp_err_set(err, HP_ESITE, "authentication to %s failed (tried: %s; the server accepts: "
                   "%s)%s", a->where, tried.len ? tried.buf : "nothing it accepts",
                   allowed && allowed[0] ? allowed : "nothing more", hint.buf);
        hp_buf_release(&hint);
        goto out;
    }
    ret = 0;
out:
    ctx->auth = NULL;
    ctx->scrub = 0;
    free(allowed);
    hp_buf_release(&tried);
    return ret;
}
