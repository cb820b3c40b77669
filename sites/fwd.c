/* fwd.c - a local listener whose connections are joined to queued tunnels
 * (fwd.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "fwd.h"
#include "util.h"
#include "banned.h"

struct hp_fwd {
    int lfd, wake[2];
    int lport;
    pthread_t th;
    int running;
    pthread_mutex_t mu;
    int queue[HP_FWD_MAX], nqueue;     /* waiting for their connection */
    int a[HP_FWD_MAX], t[HP_FWD_MAX];  /* pairs: accepted, queued (the thread's) */
    int npairs;
};

static int copy_some(int from, int to)
{
    char buf[65536];
    ssize_t r = read(from, buf, sizeof(buf));
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (r <= 0)
        return -1;
    for (ssize_t off = 0; off < r;) {
        ssize_t w = write(to, buf + off, (size_t)(r - off));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        off += w;
    }
    return 0;
}

static void *fwd_main(void *arg)
{
    struct hp_fwd *B = arg;
    for (;;) {
        struct pollfd p[2 + 2 * HP_FWD_MAX];
        size_t np = 0;
        p[np++] = (struct pollfd){ .fd = B->wake[0], .events = POLLIN };
        p[np++] = (struct pollfd){ .fd = B->lfd, .events = POLLIN };
        for (int i = 0; i < B->npairs; i++) {
            p[np++] = (struct pollfd){ .fd = B->a[i], .events = POLLIN };
            p[np++] = (struct pollfd){ .fd = B->t[i], .events = POLLIN };
        }
        if (poll(p, np, -1) < 0 && errno != EINTR)
            break;
        if (p[0].revents)
            break;
        if ((p[1].revents & POLLIN) && B->npairs < HP_FWD_MAX) {
            int fd = accept4(B->lfd, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0) {
                pthread_mutex_lock(&B->mu);
                int t = -1;
                if (B->nqueue) {
                    t = B->queue[0];
                    memmove(B->queue, B->queue + 1, (size_t)--B->nqueue * sizeof(int));
                }
                pthread_mutex_unlock(&B->mu);
                if (t < 0) {
                    close(fd);
                } else {
                    B->a[B->npairs] = fd;
                    B->t[B->npairs++] = t;
                }
            }
        }
        for (int i = B->npairs - 1; i >= 0; i--) {
            size_t k = 2 + 2 * (size_t)i;
            int bad = 0;
            if (k < np && p[k].revents)
                bad |= copy_some(B->a[i], B->t[i]) < 0;
            if (!bad && k + 1 < np && p[k + 1].revents)
                bad |= copy_some(B->t[i], B->a[i]) < 0;
            if (bad) {
                close(B->a[i]);
                close(B->t[i]);
                B->npairs--;
                B->a[i] = B->a[B->npairs];
                B->t[i] = B->t[B->npairs];
            }
        }
    }
    for (int i = 0; i < B->npairs; i++) {
        close(B->a[i]);
        close(B->t[i]);
    }
    B->npairs = 0;
    return NULL;
}

void hp_fwd_free(struct hp_fwd *B)
{
    if (!B)
        return;
    if (B->running) {
        ssize_t w = write(B->wake[1], "x", 1);
        (void)w;
        pthread_join(B->th, NULL);
    }
    for (int i = 0; i < B->nqueue; i++)
        close(B->queue[i]);
    if (B->lfd >= 0)
        close(B->lfd);
    if (B->wake[0] >= 0) {
        close(B->wake[0]);
        close(B->wake[1]);
    }
    pthread_mutex_destroy(&B->mu);
    free(B);
}

struct hp_fwd *hp_fwd_new(struct hp_err *err)
{
    struct hp_fwd *B = hp_xcalloc(1, sizeof(*B));
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    pthread_mutex_init(&B->mu, NULL);
    B->wake[0] = B->wake[1] = -1;
    B->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (B->lfd < 0 || bind(B->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(B->lfd, HP_FWD_MAX) < 0 || getsockname(B->lfd, (struct sockaddr *)&sa, &sl) < 0 ||
        pipe2(B->wake, O_CLOEXEC) < 0) {
        hp_err_errno(err, "local listener for tunnels");
        hp_fwd_free(B);
        return NULL;
    }
    B->lport = ntohs(sa.sin_port);
    if (pthread_create(&B->th, NULL, fwd_main, B) != 0) {
        hp_err_set(err, HP_ESYS, "cannot start the tunnel copying thread");
        hp_fwd_free(B);
        return NULL;
    }
    B->running = 1;
    return B;
}

int hp_fwd_port(const struct hp_fwd *F)
{
    return F->lport;
}

int hp_fwd_push(struct hp_fwd *F, int fd)
{
    pthread_mutex_lock(&F->mu);
    int full = F->nqueue >= HP_FWD_MAX;
    if (!full)
        F->queue[F->nqueue++] = fd;
    pthread_mutex_unlock(&F->mu);
    return full ? -1 : 0;
}
