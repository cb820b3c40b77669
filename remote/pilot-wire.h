/* pilot-wire.h - the agent <-> pilot protocol (remote/agent.c, remote/pilot.c).
 *
 * Over TCP every message is one frame: a 4-byte big-endian length, then that
 * many bytes of one JSON object whose "t" member names the message:
 *
 *   agent -> pilot  {"t":"challenge","nonce":HEX}            on accept
 *   pilot -> agent  {"t":"register","pilot":ID,"mac":HEX,"cores":N,"gpus":N,"nodes":N}
 *                   mac = HMAC-SHA256(secret, nonce) in hex: the secret never
 *                   crosses the wire
 *   agent -> pilot  {"t":"welcome","hb":SECONDS} | {"t":"denied","msg":TEXT}
 *   pilot -> agent  {"t":"pull","n":N,"remaining":SECONDS (0: unknown)}
 *   agent -> pilot  {"t":"batch","tasks":[TASK...],"left":N,"drain":BOOL}
 *   pilot -> agent  {"t":"results","r":[{"id":ID,"attempt":A,"exit":E,"signal":S}
 *                                       | {"id":ID,"attempt":A,"release":true}...]}
 *   agent -> pilot  {"t":"ack","left":N,"drain":BOOL}
 *   pilot -> agent  {"t":"hb"}  -> {"t":"ack",...}
 *   pilot -> agent  {"t":"bye"} (no answer; the pilot holds no task)
 *
 * TASK = {"id":ID,"attempt":A,"argv":[...]|"sh":TEXT,"env":{...},"cwd":DIR,
 *         "stdout":FILE,"stderr":FILE,"cores":N,"gpus":N,"nodes":N,"walltime":S}
 * ID is the agent's integer task key. Spool files hold the same TASK and
 * result objects, one per line (see agent.h). */
#ifndef HP_PILOT_WIRE_H
#define HP_PILOT_WIRE_H

#include <jansson.h>
#include <stddef.h>
#include "buf.h"
#include "err.h"

#define HP_WIRE_MAX (64u << 20)   /* largest frame accepted */
#define HP_WIRE_NONCE 32          /* bytes of challenge */

/* Write one frame holding obj (not stolen). */
int hp_wire_send(int fd, json_t *obj, struct hp_err *err);
/* Read one frame (blocking, up to timeout_ms; -1 waits forever). *out is a
 * new reference. A closed connection is an error with code HP_EUNAVAIL. */
int hp_wire_recv(int fd, int timeout_ms, json_t **out, struct hp_err *err);
/* Take one frame off the front of b if complete: 1 (frame in *out, bytes
 * consumed), 0 (need more), -1 (bad frame). */
int hp_wire_take(struct hp_buf *b, json_t **out, struct hp_err *err);
/* HMAC-SHA256(key, msg) as 64 hex digits + NUL into hex. */
void hp_wire_mac(const void *key, size_t keylen, const char *msg, char hex[65]);
/* Constant-time comparison of two NUL-terminated hex strings; 1 if equal. */
int hp_wire_mac_eq(const char *a, const char *b);
/* Write a file atomically: TMPDIR/NAME.tmp.PID then rename() to path. */
int hp_wire_write_atomic(const char *path, const char *data, size_t len, unsigned mode,
                         struct hp_err *err);

#endif
