/* prompt.c - the user-facing side of authentication: the registered ui,
 * $HPCPORT_ASKPASS, otp_command, and wiping secrets. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include "auth.h"
#include "buf.h"
#include "util.h"
#include "banned.h"

static struct hp_auth_ui the_ui;
static int have_ui, prompts_off;
static unsigned otp_runs;

void hp_auth_set_ui(const struct hp_auth_ui *ui)
{
    if (ui) {
        the_ui = *ui;
        have_ui = 1;
    } else {
        memset(&the_ui, 0, sizeof(the_ui));
        have_ui = 0;
    }
}

void hp_auth_disable_prompts(void)
{
    prompts_off = 1;
    hp_auth_set_ui(NULL);
}

static const char *askpass_program(void)
{
    const char *a = getenv("HPCPORT_ASKPASS");
    return a && *a && !prompts_off ? a : NULL;
}

int hp_auth_can_prompt(void)
{
    return !prompts_off && ((have_ui && the_ui.prompt) || askpass_program());
}

void hp_secret_free(char *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

/* Run argv with stdin from /dev/null, capture stdout (at most 4 KiB) as a
 * secret-grade buffer. Returns the exit status, or -1 with errno. */
static int run_capture(const char *const *argv, double timeout, char **out)
{
    int p[2];
    *out = NULL;
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        errno = e;
        return -1;
    }
    if (pid == 0) {
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, 0);
        dup2(p[1], 1);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    char buf[4096];
    size_t n = 0;
    double end = hp_now() + timeout;
    int timed_out = 0;
    for (;;) {
        int ms = (int)((end - hp_now()) * 1000);
        if (ms <= 0) {
            timed_out = 1;
            break;
        }
        struct pollfd pf = { .fd = p[0], .events = POLLIN };
        int r = poll(&pf, 1, ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            timed_out = r == 0;
            break;
        }
        ssize_t k = read(p[0], buf + n, sizeof(buf) - 1 - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
        if (n >= sizeof(buf) - 1)
            break;
    }
    close(p[0]);
    if (timed_out)
        kill(pid, SIGKILL);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    buf[n] = '\0';
    *out = hp_xstrdup(buf);
    OPENSSL_cleanse(buf, sizeof(buf));
    if (timed_out) {
        errno = ETIMEDOUT;
        hp_secret_free(*out);
        *out = NULL;
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Keep the first line, trimmed of surrounding blanks. */
static void first_line(char *s)
{
    char *nl = strpbrk(s, "\r\n");
    if (nl)
        *nl = '\0';
    size_t len = strlen(s);
    while (len && isspace((unsigned char)s[len - 1]))
        s[--len] = '\0';
    size_t lead = strspn(s, " \t");
    if (lead)
        memmove(s, s + lead, len - lead + 1);
}

/* The prompt without its trailing ": " for messages (new string). */
static char *bare(const char *prompt)
{
    char *b = hp_xstrdup(prompt);
    size_t l = strlen(b);
    while (l && (b[l - 1] == ' ' || b[l - 1] == ':' || b[l - 1] == '?'))
        b[--l] = '\0';
    return b;
}

int hp_auth_ask(const char *prompt, int echo, char **answer, struct hp_err *err)
{
    *answer = NULL;
    if (prompts_off) {
        char *b = bare(prompt);
        hp_err_set(err, HP_ESITE, "the server asks '%s', and a background process cannot ask "
                   "the user", b);
        free(b);
        return -1;
    }
    const char *ap = askpass_program();
    if (ap) {
        const char *argv[] = { ap, prompt, NULL };
        char *out = NULL;
        int st = run_capture(argv, 300, &out);
        if (st < 0)
            return hp_err_errno(err, "HPCPORT_ASKPASS program '%s'", ap);
        if (st != 0) {
            hp_secret_free(out);
            return hp_err_set(err, HP_ESITE, "HPCPORT_ASKPASS program '%s' exited with status "
                              "%d for prompt '%s'", ap, st, prompt);
        }
        char *nl = strpbrk(out, "\r\n");
        if (nl)
            *nl = '\0';
        *answer = out;
        return 0;
    }
    if (!have_ui || !the_ui.prompt) {
        char *b = bare(prompt);
        hp_err_set(err, HP_ESITE, "'%s' needs an answer, but there is no terminal to ask on; "
                   "run the command in a terminal, set HPCPORT_ASKPASS, or start 'hpcport "
                   "connect SITE' from a terminal first", b);
        free(b);
        return -1;
    }
    char buf[1024];
    if (the_ui.prompt(the_ui.ud, prompt, echo, buf, sizeof(buf)) < 0) {
        OPENSSL_cleanse(buf, sizeof(buf));
        char *b = bare(prompt);
        hp_err_set(err, HP_ESITE, "'%s' needs an answer, but there is no terminal to ask on "
                   "(or input ended); run the command in a terminal, set HPCPORT_ASKPASS, or "
                   "start 'hpcport connect SITE' from a terminal first", b);
        free(b);
        return -1;
    }
    buf[sizeof(buf) - 1] = '\0';
    *answer = hp_xstrdup(buf);
    OPENSSL_cleanse(buf, sizeof(buf));
    return 0;
}

int hp_auth_confirm(const char *question, struct hp_err *err)
{
    if (prompts_off || !have_ui || !the_ui.confirm)
        return hp_err_set(err, HP_ESITE, "%s: cannot ask without a terminal", question);
    int r = the_ui.confirm(the_ui.ud, question);
    if (r < 0)
        return hp_err_set(err, HP_ESITE, "%s: no answer (no terminal, or input ended)",
                          question);
    return r ? 1 : 0;
}

void hp_auth_notify(const char *fmt, ...)
{
    if (!have_ui || !the_ui.notify)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    if (msg)
        the_ui.notify(the_ui.ud, msg);
    free(msg);
}

int hp_auth_is_otp_prompt(const char *prompt)
{
    static const char *const words[] = { "verification code", "otp", "one-time", "one time",
                                         "token", "passcode", "authenticator", NULL };
    char *low = hp_xstrdup(prompt);
    for (char *p = low; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    int hit = 0;
    for (size_t i = 0; words[i] && !hit; i++)
        hit = strstr(low, words[i]) != NULL;
    free(low);
    return hit;
}

unsigned hp_auth_otp_runs(void)
{
    return otp_runs;
}

int hp_auth_run_otp(const char *command, char **otp, struct hp_err *err)
{
    const char *argv[] = { "/bin/sh", "-c", command, NULL };
    char *out = NULL;
    *otp = NULL;
    otp_runs++;
    int st = run_capture(argv, 60, &out);
    if (st < 0)
        return hp_err_errno(err, "login.otp_command '%s'", command);
    first_line(out);
    if (st != 0 || !out[0]) {
        hp_secret_free(out);
        if (st)
            return hp_err_set(err, HP_ESITE, "login.otp_command '%s' exited with status %d; fix "
                              "it in the site profile or remove it to be asked on the terminal",
                              command, st);
        return hp_err_set(err, HP_ESITE, "login.otp_command '%s' printed nothing; fix it in the "
                          "site profile or remove it to be asked on the terminal", command);
    }
    *otp = out;
    return 0;
}
