/* sshauth.h - authenticate one libssh2 session: ssh-agent, key files
 * (passphrases asked through auth.h), keyboard-interactive (one-time codes
 * from login.otp_command or asked), and password when the profile lists it.
 *
 * The session must be in non-blocking mode; hp_sshauth_run() calls a->wait
 * whenever libssh2 says it would block. The session's abstract pointer must
 * point to a struct hp_ssh_sessctx (the transport creates the session with
 * libssh2_session_init_ex and that context). */
#ifndef HP_SSHAUTH_H
#define HP_SSHAUTH_H

#include <stddef.h>
#include <libssh2.h>
#include "err.h"

struct hp_sshauth;

/* Shared by the transport and the authenticator through
 * libssh2_session_abstract(). While scrub is set, every block libssh2 frees
 * is wiped first (it held keys, passphrases or answers). */
struct hp_ssh_sessctx {
    int scrub;
    const struct hp_sshauth *auth;  /* during hp_sshauth_run */
    struct hp_err *kbd_err;         /* first failure inside the callback */
    int kbd_answered;               /* prompts answered in this attempt */
    int kbd_otp;                    /* one of them was a one-time code */
    int kbd_from_command;           /* ... that came from otp_command */
    void *list_prev;                /* last libssh2_userauth_list() result */
};

struct hp_sshauth {
    const char *user;
    const char *where;              /* "user@host port N", for messages */
    const char *const *methods;     /* in order; NULL = publickey, keyboard-interactive */
    const char *const *identity_files;  /* NULL or empty = ~/.ssh/id_ed25519, id_ecdsa, id_rsa */
    int identities_only;            /* agent keys only when they match an identity file */
    const char *otp_command;        /* NULL = ask on the terminal */
    /* wait until the session socket is ready after EAGAIN; 0, or -1 with err
     * (timeout) */
    int (*wait)(void *ud, LIBSSH2_SESSION *s, struct hp_err *err);
    void *wait_ud;
};

/* 0 when authenticated. Failures: HP_ESITE with what was tried and what the
 * server accepts; passphrase and OTP problems named as such. */
int hp_sshauth_run(LIBSSH2_SESSION *s, const struct hp_sshauth *a, struct hp_err *err);

/* 1 if the private key file path is encrypted (PEM "ENCRYPTED", PKCS#8, or
 * an openssh-key-v1 cipher other than none), 0 if not, -1 if unreadable. */
int hp_sshauth_key_encrypted(const char *path);

/* libssh2 allocator hooks for hp_ssh_sessctx sessions (libssh2_session_init_ex). */
void *hp_ssh_alloc(size_t n, void **abstract);
void *hp_ssh_realloc(void *p, size_t n, void **abstract);
void hp_ssh_free(void *p, void **abstract);

#endif
