/* auth.h - talking to the user about credentials, without printing.
 *
 * The library never reads the terminal itself: cli/ registers a struct
 * hp_auth_ui whose callbacks prompt on /dev/tty. Without one (the
 * background master, tests), questions are answered by the program named in
 * $HPCPORT_ASKPASS when set (it gets the prompt as its only argument and
 * prints the answer on stdout, like SSH_ASKPASS), else they fail with a
 * message saying what to do.
 *
 * Secrets (passphrases, one-time passwords, answers to password prompts) are
 * returned in heap strings that the caller releases with hp_secret_free(),
 * which wipes them with OPENSSL_cleanse first. They are never logged. */
#ifndef HP_AUTH_H
#define HP_AUTH_H

#include <stddef.h>
#include "err.h"

struct hp_auth_ui {
    /* Show prompt and read one line into buf (len bytes, NUL-terminated,
     * no newline); echo 0 hides what is typed. Returns 0, or -1 when no
     * answer can be had (no terminal, end of input, interrupted). */
    int (*prompt)(void *ud, const char *prompt, int echo, char *buf, size_t len);
    /* Ask a yes/no question: 1 yes, 0 no, -1 cannot ask. */
    int (*confirm)(void *ud, const char *question);
    /* Something the user should know (a host key was added, a setting was
     * overridden). One line, no trailing newline. */
    void (*notify)(void *ud, const char *msg);
    void *ud;
};

/* Register ui for this process (copied); NULL removes it. */
void hp_auth_set_ui(const struct hp_auth_ui *ui);
/* 1 if questions can be asked now (a ui with a prompt, or HPCPORT_ASKPASS). */
int hp_auth_can_prompt(void);
/* Turn prompting off for this process (HPCPORT_ASKPASS included): the
 * background master must never block on a question. */
void hp_auth_disable_prompts(void);

/* Ask prompt (echo 0 for secrets); *answer is a new string to release with
 * hp_secret_free. HP_ESITE when nobody can answer (the message says why and
 * what to do), HP_ESYS when HPCPORT_ASKPASS fails. */
int hp_auth_ask(const char *prompt, int echo, char **answer, struct hp_err *err);
/* 1 yes, 0 no; -1 with err when the question cannot be asked. */
int hp_auth_confirm(const char *question, struct hp_err *err);
/* Pass a message to ui->notify (dropped without a ui). */
void hp_auth_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* 1 if a keyboard-interactive prompt asks for a one-time code: it mentions
 * "verification code", "OTP", "one-time", "one time", "token", "passcode" or
 * "authenticator" (case-insensitive). */
int hp_auth_is_otp_prompt(const char *prompt);
/* Run command through /bin/sh -c (stdin /dev/null, stderr inherited,
 * 60-second limit) and return the first line of its output, trimmed, as a
 * secret. Fails (HP_ESITE) on a non-zero exit or empty output. */
int hp_auth_run_otp(const char *command, char **otp, struct hp_err *err);
/* Number of times hp_auth_run_otp ran a command in this process. */
unsigned hp_auth_otp_runs(void);

/* Wipe and free a secret string; NULL is fine. */
void hp_secret_free(char *s);

#endif
