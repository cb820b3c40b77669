/* jwt.h - JSON Web Tokens for slurmrestd (auth/jwt): minted here from the
 * site's HS256 key, the same way `scontrol token` does it.
 *
 * Tokens are secrets: callers keep them in memory, never log or print them,
 * and free them with hp_jwt_free() (which wipes them). */
#ifndef HP_JWT_H
#define HP_JWT_H

#include <stdint.h>
#include <time.h>
#include "err.h"

/* An HS256 JWT {"alg":"HS256","typ":"JWT"}.{"iat":now,"exp":now+lifetime,
 * "sun":user} signed with the key in key_file (new string in *token). The
 * key file must be a regular file of mode 0600 or stricter (else a refusal
 * that says so) and hold at least 16 bytes. 0, or -1 with err (HP_EINPUT:
 * the key file; HP_ESYS: reading it). The key's bytes are wiped after use. */
int hp_jwt_mint(const char *key_file, const char *user, int64_t lifetime, time_t now,
                char **token, struct hp_err *err);

/* The "exp" claim of token (not verified), or 0 when it has none. */
time_t hp_jwt_expiry(const char *token);

/* Wipe and free a token (NULL is fine). */
void hp_jwt_free(char *token);

#endif
