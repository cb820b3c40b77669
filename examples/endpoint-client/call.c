/* call.c - calling a function endpoint from C with libhpcport-client.
 *
 *   endpoint-client WHERE TOKEN_FILE FUNCTION INPUT...
 *
 * WHERE is the URL or unix socket that `hpcport tunnel SITE` printed,
 * TOKEN_FILE the token file it named. Each INPUT (a string) is sent in a
 * synchronous call, then all of them again as one batch; the outputs are
 * printed one per line, "call N: OUTPUT" and "batch N: OUTPUT". The calls
 * share one keep-alive connection. Exit status 0, or 1 with the error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hpcport-client.h>

static int fail(const char *what, const struct hp_client_error *e)
{
    fprintf(stderr, "endpoint-client: %s: %s (%s, HTTP %ld)\n", what, e->message,
            hp_client_code_name(e->code), e->http_status);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: endpoint-client WHERE TOKEN_FILE FUNCTION INPUT...\n");
        return 2;
    }
    struct hp_client_error e;
    char *token = hp_client_read_token(argv[2], &e);
    if (!token)
        return fail("token", &e);
    struct hp_client *c = hp_client_open(argv[1], token, &e);
    hp_client_token_free(token);
    if (!c)
        return fail("open", &e);
    hp_client_set_timeout(c, 60);
    int rc = 0;
    size_t n = (size_t)argc - 4;
    for (size_t i = 0; i < n && rc == 0; i++) {
        void *out;
        size_t len;
        const char *in = argv[4 + i];
        if (hp_client_call(c, argv[3], in, strlen(in), &out, &len, &e) < 0) {
            rc = fail("call", &e);
            break;
        }
        printf("call %zu: %.*s\n", i, (int)len, (const char *)out);
        free(out);
    }
    const void **ins = calloc(n, sizeof(*ins));
    size_t *lens = calloc(n, sizeof(*lens));
    char *batch = NULL;
    for (size_t i = 0; i < n && ins && lens; i++) {
        ins[i] = argv[4 + i];
        lens[i] = strlen(argv[4 + i]);
    }
    if (rc == 0 && (!ins || !lens))
        rc = 1;
    if (rc == 0 && hp_client_batch_submit(c, argv[3], ins, lens, n, &batch, &e) < 0)
        rc = fail("batch submit", &e);
    if (rc == 0) {
        struct hp_client_result *res = NULL;
        size_t nres = 0, done = 0;
        int w;
        while ((w = hp_client_batch_wait(c, batch, 10, &res, &nres, &done, &e)) == 1)
            ;
        if (w < 0)
            rc = fail("batch wait", &e);
        for (size_t i = 0; w == 0 && i < nres; i++) {
            printf("batch %zu: %s%.*s\n", i, res[i].ok ? "" : "error: ", (int)res[i].len,
                   (const char *)res[i].data);
            if (!res[i].ok)
                rc = 1;
        }
        hp_client_results_free(res, nres);
    }
    free(batch);
    free(ins);
    free(lens);
    hp_client_close(c);
    return rc;
}
