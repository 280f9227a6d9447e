/* Liveness watchdog (see watchdog.h): a star of TCP connections to rank 0, watched by one
 * thread per rank, so that a rank which dies is named by every survivor and ends the job.
 *
 * Wire format: fixed 256-byte frames, [0] type, [4..8) a 32-bit argument (network order),
 * [8..256) NUL-terminated text.
 *   H  hello, peer -> rank 0 on connect: arg = rank, text = "pid host nonce" (the nonce, drawn
 *      by rank 0 per job, keeps a rank of another job that reached our port by mistake out)
 *   B  goodbye (normal end): closing the connection after this is not a loss
 *   S  ending on a signal: arg = signal number
 *   A  ending the job on purpose (before MPI_Abort): text = why
 *   L  rank 0 -> others: a rank was lost; arg = exit code, text = what to print
 *   D  peer -> rank 0 (serving): a signal asks for a drain; arg = signal number */
#include "parallel/watchdog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

#define FRAME 256
#define TEXT_LEN (FRAME - 8)
#define MAX_ADDRS 16
#define HOST_LEN 64
#define CONNECT_TIMEOUT_MS 3000
#define ACCEPT_TIMEOUT_MS 20000

struct peer {
    int fd;             /* -1 once closed */
    int rank;
    long pid;
    char host[HOST_LEN];
    unsigned char buf[FRAME];
    int fill;           /* bytes of the frame being received */
    bool done;          /* said goodbye */
    int signo;          /* said it ends on this signal */
    bool aborting;      /* said it ends the job on purpose */
    char why[TEXT_LEN];
};

struct rd_watchdog {
    int rank, size;
    int n_peers;        /* rank 0: size - 1; others: 1 (rank 0) */
    struct peer *peers;
    int stop_pipe[2];
    pthread_t thread;
    bool thread_started;
    atomic_int stopping;
    struct sigaction old_term, old_int;
    char sig_prefix[48]; /* "[rank r/N] " for the signal handler, which cannot format */
};

/* What rank 0 broadcasts: how to reach it, or why there is no watchdog. */
struct hub {
    int32_t enabled;
    int32_t port;
    int32_t n_addrs;
    uint32_t addrs[MAX_ADDRS]; /* IPv4, network order */
    int64_t pid;
    uint64_t nonce;
    char host[HOST_LEN];
    char why_off[160];
};

/* the watchdog the signal handler and rd_watchdog_announce_abort talk through */
static struct rd_watchdog *_Atomic g_wd;
/* serving: where a drain request goes (rank 0), and the handlers it replaced */
static atomic_int *_Atomic g_drain_flag;
static atomic_int g_drain_signals;
static struct sigaction g_drain_old_term, g_drain_old_int;

/* ---- frames and sockets ---- */

static void frame_make(unsigned char *f, char type, int32_t arg, const char *text)
{
    memset(f, 0, FRAME);
    f[0] = (unsigned char)type;
    uint32_t a = htonl((uint32_t)arg);
    memcpy(f + 4, &a, 4);
    if (text) {
        size_t n = strlen(text);
        if (n > TEXT_LEN - 1) n = TEXT_LEN - 1;
        memcpy(f + 8, text, n);
    }
}

static int32_t frame_arg(const unsigned char *f)
{
    uint32_t a;
    memcpy(&a, f + 4, 4);
    return (int32_t)ntohl(a);
}

/* async-signal-safe: used from the signal handler too */
static void send_frame(int fd, const unsigned char *f)
{
    size_t off = 0;
    while (fd >= 0 && off < FRAME) {
        ssize_t k = send(fd, f + off, FRAME - off, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return;
        off += (size_t)k;
    }
}

/* reads one whole frame within timeout_ms; false on EOF, error or timeout */
static bool recv_frame_timeout(int fd, unsigned char *f, int timeout_ms)
{
    size_t off = 0;
    while (off < FRAME) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, timeout_ms);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        ssize_t k = recv(fd, f + off, FRAME - off, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return false;
        off += (size_t)k;
    }
    return true;
}

/* keepalive so that a node that vanishes (no FIN) is noticed in about 25 s */
static void tune_socket(int fd)
{
    int one = 1, idle = 10, intvl = 5, cnt = 3;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int connect_timeout(uint32_t addr, int port, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = addr;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (errno != EINPROGRESS) goto fail;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int r;
        do r = poll(&p, 1, timeout_ms); while (r < 0 && errno == EINTR);
        int err = 0;
        socklen_t len = sizeof err;
        if (r != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err) goto fail;
    }
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    tune_socket(fd);
    return fd;
fail:
    close(fd);
    return -1;
}

/* rank 0: listening socket and the addresses other ranks may use to reach it */
static bool hub_listen(struct hub *h, int *listen_fd, int backlog)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(h->why_off, sizeof h->why_off, "socket: %s", strerror(errno));
        return false;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY),
                             .sin_port = htons((uint16_t)rd_env_int("RD_WATCHDOG_PORT", 0))};
    socklen_t len = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, backlog) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        snprintf(h->why_off, sizeof h->why_off, "cannot listen on TCP port %d: %s",
                 rd_env_int("RD_WATCHDOG_PORT", 0), strerror(errno));
        close(fd);
        return false;
    }
    h->port = ntohs(sa.sin_port);
    const char *fixed = rd_env_str("RD_WATCHDOG_ADDR", NULL);
    struct in_addr ia;
    if (fixed && inet_pton(AF_INET, fixed, &ia) == 1) {
        h->addrs[h->n_addrs++] = ia.s_addr;
    } else {
        struct ifaddrs *ifs = NULL;
        if (getifaddrs(&ifs) == 0) {
            for (struct ifaddrs *i = ifs; i && h->n_addrs < MAX_ADDRS; i = i->ifa_next) {
                if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
                if (!(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK)) continue;
                h->addrs[h->n_addrs++] = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr;
            }
            freeifaddrs(ifs);
        }
    }
    *listen_fd = fd;
    return true;
}

/* ---- what a survivor prints ---- */

static _Noreturn void die(const struct rd_watchdog *wd, const char *what, int code)
{
    char line[FRAME + 64];
    int n = snprintf(line, sizeof line, "[rank %d/%d] fatal: %s; ending all ranks\n", wd->rank,
                     wd->size, what);
    if (n > 0) {
        ssize_t ignored = write(STDERR_FILENO, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
        (void)ignored;
    }
    _exit(code);
}

/* A peer's connection closed. Returns when that is expected (goodbye said); otherwise ends
 * this rank, after rank 0 has told the others. */
static void peer_gone(struct rd_watchdog *wd, struct peer *p)
{
    if (p->fd >= 0) close(p->fd);
    p->fd = -1;
    if (p->done || atomic_load(&wd->stopping)) return;
    char what[TEXT_LEN];
    int code = RD_WATCHDOG_EXIT_CODE;
    if (p->signo) {
        snprintf(what, sizeof what, "rank %d (pid %ld on %s) ended on signal %d (%s)", p->rank,
                 p->pid, p->host, p->signo, strsignal(p->signo));
        code = 128 + p->signo;
    } else if (p->aborting) {
        snprintf(what, sizeof what, "rank %d (pid %ld on %s) ended the job: %.120s", p->rank,
                 p->pid, p->host, p->why);
        code = 1;
    } else {
        snprintf(what, sizeof what, "lost rank %d (pid %ld on %s): it ended without finishing "
                 "(killed, crashed, or its node failed)", p->rank, p->pid, p->host);
    }
    if (wd->rank == 0) {
        unsigned char f[FRAME];
        frame_make(f, 'L', code, what);
        for (int i = 0; i < wd->n_peers; i++)
            if (wd->peers[i].fd >= 0 && !wd->peers[i].done) send_frame(wd->peers[i].fd, f);
    }
    die(wd, what, code);
}

static void handle_frame(struct rd_watchdog *wd, struct peer *p)
{
    const char *text = (const char *)p->buf + 8;
    switch (p->buf[0]) {
    case 'B': p->done = true; break;
    case 'S': p->signo = frame_arg(p->buf); break;
    case 'A':
        p->aborting = true;
        snprintf(p->why, sizeof p->why, "%.*s", TEXT_LEN - 1, text);
        break;
    case 'D': {
        atomic_int *flag = atomic_load(&g_drain_flag);
        if (flag) atomic_store(flag, frame_arg(p->buf));
        break;
    }
    case 'L':
        if (!atomic_load(&wd->stopping)) {
            char what[TEXT_LEN + 32];
            snprintf(what, sizeof what, "%.*s (reported by rank 0)", TEXT_LEN - 1, text);
            die(wd, what, frame_arg(p->buf));
        }
        break;
    default: break; /* unknown frames from a newer peer are ignored */
    }
}

static void *watch(void *arg)
{
    struct rd_watchdog *wd = arg;
    struct pollfd *fds = calloc((size_t)wd->n_peers + 1, sizeof *fds);
    int *idx = calloc((size_t)wd->n_peers + 1, sizeof *idx);
    if (!fds || !idx) {
        free(fds);
        free(idx);
        return NULL;
    }
    for (;;) {
        int n = 0;
        fds[n++] = (struct pollfd){.fd = wd->stop_pipe[0], .events = POLLIN};
        for (int i = 0; i < wd->n_peers; i++)
            if (wd->peers[i].fd >= 0) {
                idx[n] = i;
                fds[n++] = (struct pollfd){.fd = wd->peers[i].fd, .events = POLLIN};
            }
        int r = poll(fds, (nfds_t)n, -1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 || fds[0].revents) break;
        for (int k = 1; k < n; k++) {
            if (!fds[k].revents) continue;
            struct peer *p = &wd->peers[idx[k]];
            ssize_t got = recv(p->fd, p->buf + p->fill, (size_t)(FRAME - p->fill), MSG_DONTWAIT);
            if (got < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
            if (got <= 0) {
                peer_gone(wd, p);
                continue;
            }
            p->fill += (int)got;
            if (p->fill == FRAME) {
                handle_frame(wd, p);
                p->fill = 0;
            }
        }
    }
    free(fds);
    free(idx);
    return NULL;
}

/* ---- signals ---- */

static void put_str(char *buf, size_t *n, size_t cap, const char *s)
{
    while (*s && *n + 1 < cap) buf[(*n)++] = *s++;
}

static void on_signal(int sig)
{
    int saved = errno;
    struct rd_watchdog *wd = atomic_load(&g_wd);
    if (wd) {
        unsigned char f[FRAME];
        memset(f, 0, FRAME);
        f[0] = 'S';
        uint32_t a = htonl((uint32_t)sig);
        memcpy(f + 4, &a, 4);
        for (int i = 0; i < wd->n_peers; i++) send_frame(wd->peers[i].fd, f);
        char line[96], num[12];
        size_t n = 0, k = 0;
        int s = sig;
        do num[k++] = (char)('0' + s % 10); while ((s /= 10) && k < sizeof num);
        put_str(line, &n, sizeof line, wd->sig_prefix);
        put_str(line, &n, sizeof line, "ending on signal ");
        while (k) line[n++] = num[--k];
        put_str(line, &n, sizeof line, sig == SIGTERM ? " (SIGTERM)\n" : sig == SIGINT ? " (SIGINT)\n" : "\n");
        ssize_t ignored = write(STDERR_FILENO, line, n);
        (void)ignored;
    }
    errno = saved;
    signal(sig, SIG_DFL);
    raise(sig);
}

/* ---- start / stop ---- */

static void free_wd(struct rd_watchdog *wd)
{
    if (!wd) return;
    for (int i = 0; i < wd->n_peers; i++)
        if (wd->peers[i].fd >= 0) close(wd->peers[i].fd);
    free(wd->peers);
    if (wd->stop_pipe[0] >= 0) close(wd->stop_pipe[0]);
    if (wd->stop_pipe[1] >= 0) close(wd->stop_pipe[1]);
    free(wd);
}

rd_status rd_watchdog_start(const struct rd_world *w, struct rd_watchdog **out)
{
    *out = NULL;
    if (w->size < 2) return RD_OK;
    struct hub h;
    memset(&h, 0, sizeof h);
    int listen_fd = -1;
    if (w->rank == 0) {
        h.enabled = rd_env_int("RD_WATCHDOG", 1) != 0;
        if (!h.enabled) snprintf(h.why_off, sizeof h.why_off, "RD_WATCHDOG=0");
        if (h.enabled) h.enabled = hub_listen(&h, &listen_fd, w->size < 4096 ? w->size : 4096);
        h.pid = (int64_t)getpid();
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        h.nonce = ((uint64_t)now.tv_sec * 1000000007ull) ^ (uint64_t)now.tv_nsec ^
                  ((uint64_t)getpid() << 40);
        snprintf(h.host, sizeof h.host, "%.*s", HOST_LEN - 1, w->host);
    }
    if (MPI_Bcast(&h, (int)sizeof h, MPI_BYTE, 0, w->comm) != MPI_SUCCESS) {
        if (listen_fd >= 0) close(listen_fd);
        return RD_ERR_MPI;
    }
    if (!h.enabled) {
        if (w->rank == 0 && strcmp(h.why_off, "RD_WATCHDOG=0") != 0)
            RD_LOG_WARN("liveness watchdog off (%s): a lost rank is left to the launcher",
                        h.why_off);
        return RD_OK;
    }

    struct rd_watchdog *wd = calloc(1, sizeof *wd);
    int ok = wd != NULL;
    if (wd) {
        wd->rank = w->rank;
        wd->size = w->size;
        wd->n_peers = w->rank == 0 ? w->size - 1 : 1;
        wd->stop_pipe[0] = wd->stop_pipe[1] = -1;
        wd->peers = calloc((size_t)wd->n_peers, sizeof *wd->peers);
        ok = wd->peers != NULL && pipe(wd->stop_pipe) == 0;
        if (ok) {
            fcntl(wd->stop_pipe[0], F_SETFD, FD_CLOEXEC);
            fcntl(wd->stop_pipe[1], F_SETFD, FD_CLOEXEC);
        }
        for (int i = 0; wd->peers && i < wd->n_peers; i++) wd->peers[i].fd = -1;
    }
    /* 1. every other rank connects; the connection completes in rank 0's backlog */
    if (ok && w->rank != 0) {
        struct peer *p = &wd->peers[0];
        p->rank = 0;
        p->pid = (long)h.pid;
        snprintf(p->host, sizeof p->host, "%s", h.host);
        if (!strcmp(h.host, w->host)) p->fd = connect_timeout(htonl(INADDR_LOOPBACK), h.port,
                                                              CONNECT_TIMEOUT_MS);
        for (int i = 0; p->fd < 0 && i < h.n_addrs; i++)
            p->fd = connect_timeout(h.addrs[i], h.port, CONNECT_TIMEOUT_MS);
        if (p->fd >= 0) {
            unsigned char f[FRAME];
            char hello[TEXT_LEN];
            snprintf(hello, sizeof hello, "%ld %.*s %llu", (long)getpid(), HOST_LEN - 1, w->host,
                     (unsigned long long)h.nonce);
            frame_make(f, 'H', w->rank, hello);
            send_frame(p->fd, f);
        } else {
            RD_LOG_WARN("liveness watchdog: cannot reach rank 0 (%s, TCP port %d); set "
                        "RD_WATCHDOG_ADDR to an address of rank 0's node, or RD_WATCHDOG=0",
                        h.host, h.port);
            ok = 0;
        }
    }
    int all = 0;
    if (MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, w->comm) != MPI_SUCCESS) all = -1;
    /* 2. rank 0 takes the connections and their hellos */
    if (all == 1 && w->rank == 0) {
        int got = 0;
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (got < w->size - 1) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            int left = ACCEPT_TIMEOUT_MS - (int)((t.tv_sec - t0.tv_sec) * 1000 +
                                                 (t.tv_nsec - t0.tv_nsec) / 1000000);
            struct pollfd p = {.fd = listen_fd, .events = POLLIN};
            if (left <= 0 || poll(&p, 1, left) <= 0) break;
            int fd = accept(listen_fd, NULL, NULL);
            if (fd < 0) continue;
            fcntl(fd, F_SETFD, FD_CLOEXEC);
            unsigned char f[FRAME];
            int r = -1;
            long pid = 0;
            unsigned long long nonce = 0;
            char host[HOST_LEN] = "?";
            if (recv_frame_timeout(fd, f, 5000) && f[0] == 'H' &&
                sscanf((const char *)f + 8, "%ld %63s %llu", &pid, host, &nonce) == 3 &&
                nonce == h.nonce)
                r = frame_arg(f);
            if (r < 1 || r >= w->size || wd->peers[r - 1].fd >= 0) {
                close(fd); /* not one of ours, or a duplicate */
                continue;
            }
            struct peer *pr = &wd->peers[r - 1];
            tune_socket(fd);
            pr->fd = fd;
            pr->rank = r;
            pr->pid = pid;
            snprintf(pr->host, sizeof pr->host, "%s", host);
            got++;
        }
        if (got < w->size - 1) {
            RD_LOG_WARN("liveness watchdog: only %d of %d ranks connected to rank 0", got,
                        w->size - 1);
            ok = 0;
        }
    }
    if (listen_fd >= 0) close(listen_fd);
    if (all == 1 && MPI_Bcast(&ok, 1, MPI_INT, 0, w->comm) != MPI_SUCCESS) all = -1;
    if (all == -1) {
        free_wd(wd);
        return RD_ERR_MPI;
    }
    if (all != 1 || !ok) {
        if (w->rank == 0) RD_LOG_WARN("liveness watchdog off: a lost rank is left to the launcher");
        free_wd(wd);
        return RD_OK;
    }

    /* 3. the thread and the signal handlers */
    snprintf(wd->sig_prefix, sizeof wd->sig_prefix, "[rank %d/%d] ", w->rank, w->size);
    atomic_store(&g_wd, wd);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &wd->old_term);
    sigaction(SIGINT, &sa, &wd->old_int);
    if (pthread_create(&wd->thread, NULL, watch, wd) != 0) {
        /* every other rank may have a thread; ours is simply missing, which only costs the
         * message if a peer dies */
        RD_LOG_WARN("liveness watchdog: cannot start its thread on this rank");
    } else {
        wd->thread_started = true;
    }
    *out = wd;
    RD_LOG_DEBUG("liveness watchdog on: rank 0 at %s:%d", h.host, h.port);
    return RD_OK;
}

void rd_watchdog_stop(struct rd_watchdog *wd)
{
    if (!wd) return;
    atomic_store(&wd->stopping, 1);
    sigaction(SIGTERM, &wd->old_term, NULL);
    sigaction(SIGINT, &wd->old_int, NULL);
    atomic_store(&g_wd, NULL);
    unsigned char f[FRAME];
    frame_make(f, 'B', 0, NULL);
    for (int i = 0; i < wd->n_peers; i++) send_frame(wd->peers[i].fd, f);
    if (wd->thread_started) {
        ssize_t ignored = write(wd->stop_pipe[1], "x", 1);
        (void)ignored;
        pthread_join(wd->thread, NULL);
    }
    /* read what peers sent so closing does not answer with a reset, which could reach a peer
     * before our goodbye */
    for (int i = 0; i < wd->n_peers; i++) {
        unsigned char sink[FRAME];
        while (wd->peers[i].fd >= 0 && recv(wd->peers[i].fd, sink, sizeof sink, MSG_DONTWAIT) > 0) {
        }
    }
    free_wd(wd);
}

static void on_drain_signal(int sig)
{
    int saved = errno;
    if (atomic_fetch_add(&g_drain_signals, 1) == 0) {
        struct rd_watchdog *wd = atomic_load(&g_wd);
        atomic_int *flag = atomic_load(&g_drain_flag);
        if (wd && wd->rank != 0) {
            unsigned char f[FRAME];
            memset(f, 0, FRAME);
            f[0] = 'D';
            uint32_t a = htonl((uint32_t)sig);
            memcpy(f + 4, &a, 4);
            send_frame(wd->peers[0].fd, f);
        } else if (flag) {
            atomic_store(flag, sig);
        }
        errno = saved;
        return;
    }
    /* a second signal: what it did before serving (tell the peers, then die of it) */
    sigaction(sig, sig == SIGTERM ? &g_drain_old_term : &g_drain_old_int, NULL);
    errno = saved;
    raise(sig);
}

void rd_watchdog_drain_on_signal(atomic_int *flag)
{
    atomic_store(&g_drain_flag, flag);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_drain_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &g_drain_old_term);
    sigaction(SIGINT, &sa, &g_drain_old_int);
}

void rd_watchdog_announce_abort(const char *why)
{
    struct rd_watchdog *wd = atomic_load(&g_wd);
    if (!wd) return;
    unsigned char f[FRAME];
    frame_make(f, 'A', 0, why);
    atomic_store(&wd->stopping, 1); /* our own peers' reactions no longer matter */
    for (int i = 0; i < wd->n_peers; i++) send_frame(wd->peers[i].fd, f);
}
