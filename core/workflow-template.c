/* workflow-template.c - {param} templates, parsed once per task into
 * segments and rendered per instance without re-parsing.
 *
 * Syntax: {name} is a matrix parameter or a builtin ({task}, {index});
 * {{ and }} are literal braces; any other brace is an error, so a shell
 * script's ${HOME} must be written ${{HOME}} and cannot silently vanish. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "workflow-int.h"
#include "doc.h"
#include "quote.h"
#include "util.h"
#include "banned.h"

static int name_start(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int name_char(int c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

/* Values of p quoted as shell words, built when a shell template first uses p. */
static void ensure_shq(struct wf_arena *a, struct wf_param *p)
{
    if (p->shq)
        return;
    struct hp_buf b = HP_BUF_INIT;
    p->shq = wf_alloc(a, p->nvals * sizeof(*p->shq));
    for (size_t i = 0; i < p->nvals; i++) {
        if (hp_shell_safe(p->val[i]) && p->val[i][0] != '=') {
            p->shq[i] = p->val[i];
            continue;
        }
        hp_buf_reset(&b);
        hp_sq_quote_pretty(&b, p->val[i]);
        p->shq[i] = wf_strndup(a, b.buf, b.len);
    }
    hp_buf_release(&b);
}

int wf_tmpl_compile(struct hp_workflow *wf, size_t t, const char *src, const char *ptr,
                    int shell, struct wf_tmpl *out, struct hp_err *err)
{
    struct wf_arena *a = &wf->priv->arena;
    struct wf_matrix *m = &wf->priv->td[t].m;
    const char *task = wf->tasks[t].name;
    size_t srclen = strlen(src), nseg = 0, segalloc = 0;
    struct wf_seg *seg = NULL;
    /* literal text (unescaped, {task} resolved) goes into one arena string;
     * segments point into it */
    size_t ntask = 0;
    for (const char *p = src; (p = strstr(p, "{task}")); p += 6)
        ntask++;
    char *lit = wf_alloc(a, srclen + ntask * strlen(task) + 1);
    size_t litlen = 0, segstart = 0;
    int ret = -1;

    memset(out, 0, sizeof(*out));
    out->ptr = ptr;
    out->shell = shell;

#define FLUSH_LIT()                                                          \
    do {                                                                     \
        if (litlen > segstart) {                                             \
            HP_ALLOC_GROW(seg, nseg + 1, segalloc);                          \
            seg[nseg++] = (struct wf_seg){ WF_SEG_LIT, lit + segstart,       \
                                           litlen - segstart, 0 };           \
            segstart = litlen;                                               \
        }                                                                    \
    } while (0)

    for (size_t i = 0; i < srclen;) {
        char c = src[i];
        if (c == '}') {
            if (src[i + 1] != '}') {
                hp_doc_err(wf->doc, err, HP_EINPUT, ptr, 0,
                           "bad template in task '%s': unmatched '}' (write '}}' for a "
                           "literal brace)", task);
                goto out;
            }
            lit[litlen++] = '}';
            i += 2;
            continue;
        }
        if (c != '{') {
            lit[litlen++] = c;
            i++;
            continue;
        }
        if (src[i + 1] == '{') {
            lit[litlen++] = '{';
            i += 2;
            continue;
        }
        size_t j = i + 1;
        if (name_start((unsigned char)src[j]))
            while (name_char((unsigned char)src[j]))
                j++;
        if (j == i + 1 || src[j] != '}') {
            hp_doc_err(wf->doc, err, HP_EINPUT, ptr, 0,
                       "bad template in task '%s': '{' does not start a {name} (write '{{' "
                       "for a literal brace)", task);
            goto out;
        }
        const char *name = src + i + 1;
        size_t len = j - i - 1;
        i = j + 1;
        if (len == 4 && !memcmp(name, "task", 4)) {
            /* task names are shell-safe: no quoting needed */
            size_t tl = strlen(task);
            memcpy(lit + litlen, task, tl);
            litlen += tl;
            continue;
        }
        FLUSH_LIT();
        HP_ALLOC_GROW(seg, nseg + 1, segalloc);
        if (len == 5 && !memcmp(name, "index", 5)) {
            seg[nseg++] = (struct wf_seg){ WF_SEG_INDEX, NULL, 0, 0 };
            continue;
        }
        size_t k;
        for (k = 0; k < m->nparams; k++)
            if (strlen(m->p[k].name) == len && !memcmp(m->p[k].name, name, len))
                break;
        if (k == m->nparams) {
            char *word = hp_xstrndup(name, len);
            const char **cand = hp_xcalloc(m->nparams + 3, sizeof(*cand));
            for (size_t q = 0; q < m->nparams; q++)
                cand[q] = m->p[q].name;
            cand[m->nparams] = "task";
            cand[m->nparams + 1] = "index";
            const char *s = hp_suggest(word, cand);
            if (s)
                hp_doc_err(wf->doc, err, HP_EINPUT, ptr, 0,
                           "unknown template parameter '%s' in task '%s' (did you mean '%s'?)",
                           word, task, s);
            else
                hp_doc_err(wf->doc, err, HP_EINPUT, ptr, 0,
                           "unknown template parameter '%s' in task '%s' (write '{{' and '}}' "
                           "for literal braces)", word, task);
            free(cand);
            free(word);
            goto out;
        }
        if (shell)
            ensure_shq(a, &m->p[k]);
        seg[nseg++] = (struct wf_seg){ WF_SEG_PARAM, NULL, 0, k };
    }
    FLUSH_LIT();
#undef FLUSH_LIT
    lit[litlen] = '\0';
    if (nseg <= 1 && (!nseg || seg[0].kind == WF_SEG_LIT)) {
        out->konst = lit;
    } else {
        out->seg = wf_alloc(a, nseg * sizeof(*seg));
        memcpy(out->seg, seg, nseg * sizeof(*seg));
        out->nseg = nseg;
    }
    ret = 0;
out:
    free(seg);
    return ret;
}

const char *wf_tmpl_render(struct wf_arena *a, const struct wf_tmpl *t,
                           const struct wf_ictx *ic)
{
    if (t->konst)
        return t->konst;
    size_t n = 0;
    for (size_t i = 0; i < t->nseg; i++) {
        const struct wf_seg *s = &t->seg[i];
        if (s->kind == WF_SEG_LIT) {
            n += s->len;
        } else if (s->kind == WF_SEG_INDEX) {
            n += ic->index_len;
        } else {
            const struct wf_param *p = &ic->m->p[s->param];
            uint32_t v = ic->vi[s->param];
            n += t->shell ? strlen(p->shq[v]) : p->len[v];
        }
    }
    char *o = wf_alloc_chars(a, n + 1), *q = o;
    for (size_t i = 0; i < t->nseg; i++) {
        const struct wf_seg *s = &t->seg[i];
        const char *src;
        size_t len;
        if (s->kind == WF_SEG_LIT) {
            src = s->s;
            len = s->len;
        } else if (s->kind == WF_SEG_INDEX) {
            src = ic->index;
            len = ic->index_len;
        } else {
            const struct wf_param *p = &ic->m->p[s->param];
            uint32_t v = ic->vi[s->param];
            src = t->shell ? p->shq[v] : p->val[v];
            len = t->shell ? strlen(src) : p->len[v];
        }
        memcpy(q, src, len);
        q += len;
    }
    *q = '\0';
    return o;
}
