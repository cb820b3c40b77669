/* knownhosts.h - host keys the user trusts: OpenSSH known_hosts files read
 * through libssh2 (plain and |1| hashed names, "[host]:port" for ports other
 * than 22), plus hpcport's own file, $XDG_CONFIG_HOME/hpcport/known_hosts
 * (mode 0600), where `hpcport site trust` adds keys.
 *
 * Lines libssh2 cannot read (markers such as @cert-authority, key types it
 * does not know) are skipped, not fatal. */
#ifndef HP_KNOWNHOSTS_H
#define HP_KNOWNHOSTS_H

#include <stddef.h>
#include "err.h"

struct hp_kh;

enum hp_kh_result {
    HP_KH_MATCH = 0,
    HP_KH_UNKNOWN = 1,    /* no key of this type for the host */
    HP_KH_CHANGED = 2,    /* a key of this type is recorded and differs */
};

/* Load files in order (NULL-terminated; missing ones are skipped). */
struct hp_kh *hp_kh_load(const char *const *files, struct hp_err *err);
void hp_kh_free(struct hp_kh *kh);

/* Check key (raw blob as libssh2_session_hostkey returns it, of libssh2
 * hostkey type type) for host:port. A match in any file wins over a changed
 * key in another. On HP_KH_MATCH and HP_KH_CHANGED, *where (when not NULL)
 * is set to a new "FILE:LINE" of the entry. */
enum hp_kh_result hp_kh_check(struct hp_kh *kh, const char *host, int port, const char *key,
                              size_t keylen, int type, char **where);

/* Bit mask (1 << libssh2 hostkey type) of the key types recorded for
 * host:port in any file, so that those algorithms can be preferred. */
unsigned hp_kh_known_types(struct hp_kh *kh, const char *host, int port);

/* Append "host key" to file (created 0600, its directory 0700) and to kh when
 * kh is not NULL. */
int hp_kh_add(struct hp_kh *kh, const char *file, const char *host, int port, const char *key,
              size_t keylen, int type, struct hp_err *err);

/* hpcport's own known_hosts file (new string). */
char *hp_kh_own_file(void);
/* "SHA256:<base64, no padding>" of a key blob, as OpenSSH prints (new). */
char *hp_kh_fingerprint(const char *key, size_t keylen);
/* OpenSSH name of a libssh2 hostkey type: "ssh-ed25519", "ssh-rsa", ... */
const char *hp_kh_type_name(int type);
/* The name a known_hosts line uses: "host" for port 22, else
 * "[host]:port" (new string). */
char *hp_kh_host_name(const char *host, int port);

#endif
