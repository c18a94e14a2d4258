// HTTP/1.1 keep-alive server and load generator for the proxy benchmark (Benchmarks/proxy.sh).
//
//   httpload serve PORT [--threads N] [--delay-us D] [--uid U]
//       Keep-alive HTTP/1.1 server on 0.0.0.0:PORT, one epoll loop per thread (SO_REUSEPORT).
//       `GET /bulk/<N>` streams N bytes; any other request gets a fixed 1,024-byte body. With
//       --delay-us every response is held back D microseconds (to check the client's arithmetic).
//       Prints "listening" once bound; on SIGTERM/SIGINT prints one summary line
//       "accepted=.. from_127_0_0_6=.. requests=.. bulk_bytes=.." and exits.
//   httpload rate HOST PORT --rate R --conns C --seconds S [--warmup W] [--drain D] [--uid U]
//       Open loop: request i is due at t0 + i/R, whatever happened to the earlier ones. A due request
//       goes out on any idle connection; if none is idle it waits, and its latency still counts from
//       the moment it was due (no coordinated omission: a stall shows up in every request it delayed).
//       Requests due in the first W seconds warm up and are not recorded; those due in the next S
//       seconds are. After that the client waits at most D seconds for outstanding responses.
//   httpload max HOST PORT --conns C --seconds S [--warmup W] [--uid U]
//       Closed loop: each connection sends its next request as soon as the response is in.
//   httpload bulk HOST PORT --bytes N [--timeout S] [--uid U]
//       One connection, `GET /bulk/N`, the body read and counted; throughput from the request to the
//       last byte.
//   httpload spin SECONDS
//       Busy loop at SCHED_IDLE priority for SECONDS (a diagnostic): it keeps a CPU out of its idle state,
//       and so out of the wake-up latency an idle vCPU costs, while taking CPU only when nothing else wants
//       it.
//
// rate/max print one line of key=value pairs: rps (responses completed inside the measured window /
// S), completed/unfinished/errors (of the requests due in the window), total_ok (every response,
// warm-up included: what a proxy handled), latency percentiles p50/p90/p99/p999/max/mean in
// microseconds (nearest rank, every recorded request kept, none sampled away), and lag_* = how late
// the generator itself put requests on the wire relative to their due time.
// --uid drops to that uid/gid before any socket exists (the pod's app, so capture rules apply).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define SMALL_BODY 1024
#define NS_PER_S 1000000000ull

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "httpload: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void fail(const char *message) {
    fprintf(stderr, "httpload: %s\n", message);
    exit(2);
}

static void drop_to(long uid) {
    if (uid < 0) return;
    if (setgroups(0, NULL) < 0 || setgid((gid_t)uid) < 0 || setuid((uid_t)uid) < 0) die("dropping to --uid");
}

static void set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) die("fcntl O_NONBLOCK");
}

static void set_nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void arm_timer(int tfd, uint64_t at_ns) {
    struct itimerspec its = {0};
    if (at_ns) {
        its.it_value.tv_sec = (time_t)(at_ns / NS_PER_S);
        its.it_value.tv_nsec = (long)(at_ns % NS_PER_S);
    }
    if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0) die("timerfd_settime");
}

// ------------------------------------------------------------------------------------------------
// Server

#define SERVER_INBUF 8192
#define SERVER_QUEUE 64
#define SERVER_MAXFD 65536

static char small_response[256 + SMALL_BODY];
static size_t small_response_len;
static char bulk_chunk[1 << 20];
static volatile sig_atomic_t stopping;

struct pending { uint64_t ready_ns; uint64_t body; int bulk; };

struct sconn {
    int fd;
    uint32_t events;
    char in[SERVER_INBUF];
    size_t inlen;
    struct pending queue[SERVER_QUEUE];
    int qhead, qlen;
    int started;                 // the head response is being written
    const char *out; size_t outlen, outoff;
    char header[128];
    uint64_t body_left;
};

struct sthread {
    int port, epfd, listenfd, timerfd;
    uint64_t delay_ns, timer_at;
    struct sconn **conns;
    int maxfd;
    unsigned long accepted, from_loopback6, requests;
    unsigned long long bulk_bytes;
    pthread_t thread;
};

static void sconn_close(struct sthread *t, struct sconn *c) {
    epoll_ctl(t->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    t->conns[c->fd] = NULL;
    free(c);
}

static void sconn_interest(struct sthread *t, struct sconn *c, int want_out) {
    // Stop reading while the response queue is full: the client is pipelining faster than we write.
    uint32_t events = (c->qlen < SERVER_QUEUE ? EPOLLIN : 0) | (want_out ? EPOLLOUT : 0) | EPOLLRDHUP;
    if (events == c->events) return;
    struct epoll_event ev = { .events = events, .data.fd = c->fd };
    if (epoll_ctl(t->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl MOD");
    c->events = events;
}

static void server_want_timer(struct sthread *t, uint64_t at) {
    if (t->timer_at && t->timer_at <= at) return;
    t->timer_at = at;
    arm_timer(t->timerfd, at);
}

// Writes queued responses in order; returns -1 when the connection must be closed.
static int sconn_pump(struct sthread *t, struct sconn *c) {
    uint64_t now = 0;
    while (c->qlen > 0) {
        struct pending *p = &c->queue[c->qhead];
        if (!c->started) {
            if (p->ready_ns) {
                if (!now) now = now_ns();
                if (p->ready_ns > now) {
                    server_want_timer(t, p->ready_ns);
                    sconn_interest(t, c, 0);
                    return 0;
                }
            }
            if (p->bulk) {
                int n = snprintf(c->header, sizeof c->header,
                                 "HTTP/1.1 200 OK\r\nContent-Length: %llu\r\nContent-Type: application/octet-stream\r\n\r\n",
                                 (unsigned long long)p->body);
                c->out = c->header; c->outlen = (size_t)n; c->body_left = p->body;
            } else {
                c->out = small_response; c->outlen = small_response_len; c->body_left = 0;
            }
            c->outoff = 0;
            c->started = 1;
        }
        while (c->outoff < c->outlen) {
            ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR) { sconn_interest(t, c, 1); return 0; }
                return -1;
            }
            c->outoff += (size_t)n;
        }
        while (c->body_left > 0) {
            size_t size = c->body_left < sizeof bulk_chunk ? (size_t)c->body_left : sizeof bulk_chunk;
            ssize_t n = send(c->fd, bulk_chunk, size, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR) { sconn_interest(t, c, 1); return 0; }
                return -1;
            }
            c->body_left -= (uint64_t)n;
            t->bulk_bytes += (unsigned long long)n;
        }
        c->started = 0;
        c->qhead = (c->qhead + 1) % SERVER_QUEUE;
        c->qlen--;
        t->requests++;
    }
    sconn_interest(t, c, 0);
    return 0;
}

// Turns complete request heads in the input buffer into queued responses (GET only: no bodies).
static int sconn_parse(struct sthread *t, struct sconn *c) {
    while (c->qlen < SERVER_QUEUE) {
        char *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
        if (!end) return c->inlen == SERVER_INBUF ? -1 : 0;
        size_t length = (size_t)(end + 4 - c->in);
        struct pending p = {0};
        if (length > 10 && memcmp(c->in, "GET /bulk/", 10) == 0) {
            p.bulk = 1;
            p.body = strtoull(c->in + 10, NULL, 10);
        }
        if (t->delay_ns) p.ready_ns = now_ns() + t->delay_ns;
        c->queue[(c->qhead + c->qlen) % SERVER_QUEUE] = p;
        c->qlen++;
        memmove(c->in, c->in + length, c->inlen - length);
        c->inlen -= length;
    }
    return 0;
}

static void server_accept(struct sthread *t) {
    for (int i = 0; i < 256; i++) {
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        int fd = accept4(t->listenfd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        if (fd >= SERVER_MAXFD) { close(fd); continue; }
        t->accepted++;
        // The inbound hop of a sidecar (Envoy, sluice-proxy, the socat stand-in) connects from 127.0.0.6.
        if (peer.sin_family == AF_INET && peer.sin_addr.s_addr == htonl(0x7f000006)) t->from_loopback6++;
        set_nodelay(fd);
        struct sconn *c = calloc(1, sizeof *c);
        if (!c) fail("out of memory");
        c->fd = fd;
        c->events = EPOLLIN | EPOLLRDHUP;
        struct epoll_event ev = { .events = c->events, .data.fd = fd };
        if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl ADD");
        t->conns[fd] = c;
        if (fd > t->maxfd) t->maxfd = fd;
    }
}

static void server_timer(struct sthread *t) {
    uint64_t expirations;
    if (read(t->timerfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN) die("read timerfd");
    t->timer_at = 0;
    for (int fd = 0; fd <= t->maxfd; fd++) {
        struct sconn *c = t->conns[fd];
        if (c && c->qlen > 0 && !c->started && sconn_pump(t, c) < 0) sconn_close(t, c);
    }
}

static void *server_loop(void *arg) {
    struct sthread *t = arg;
    struct epoll_event events[256];
    while (!stopping) {
        // The timeout only bounds how long a stop request waits.
        int n = epoll_wait(t->epfd, events, 256, 100);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == t->listenfd) { server_accept(t); continue; }
            if (fd == t->timerfd) { server_timer(t); continue; }
            struct sconn *c = t->conns[fd];
            if (!c) continue;
            uint32_t ev = events[i].events;
            if (ev & EPOLLIN) {
                int closed = 0;
                for (int round = 0; round < 64 && c->inlen < SERVER_INBUF; round++) {
                    ssize_t r = recv(fd, c->in + c->inlen, SERVER_INBUF - c->inlen, 0);
                    if (r > 0) { c->inlen += (size_t)r; continue; }
                    if (r == 0 || (errno != EAGAIN && errno != EINTR)) closed = 1;
                    break;
                }
                // A client that closes its side gets no more answers: none of ours ever half-closes.
                if (closed || sconn_parse(t, c) < 0 || sconn_pump(t, c) < 0) { sconn_close(t, c); continue; }
            } else if (ev & (EPOLLERR | EPOLLHUP)) {
                sconn_close(t, c);
                continue;
            }
            if (ev & EPOLLOUT) {
                if (sconn_pump(t, c) < 0 || sconn_parse(t, c) < 0 || sconn_pump(t, c) < 0) sconn_close(t, c);
            }
        }
    }
    return NULL;
}

static void on_stop(int sig) { (void)sig; stopping = 1; }

static int run_server(int port, int threads, long delay_us, long uid) {
    int n = snprintf(small_response, sizeof small_response,
                     "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: text/plain\r\n\r\n", SMALL_BODY);
    memset(small_response + n, 'x', SMALL_BODY);
    small_response_len = (size_t)n + SMALL_BODY;
    for (size_t i = 0; i < sizeof bulk_chunk; i++) bulk_chunk[i] = (char)('a' + i % 26);
    drop_to(uid);
    struct sigaction sa = { .sa_handler = on_stop };
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct sthread *ts = calloc((size_t)threads, sizeof *ts);
    for (int i = 0; i < threads; i++) {
        struct sthread *t = &ts[i];
        t->port = port;
        t->delay_ns = (uint64_t)delay_us * 1000u;
        t->conns = calloc(SERVER_MAXFD, sizeof *t->conns);
        t->listenfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (t->listenfd < 0) die("socket");
        int one = 1;
        setsockopt(t->listenfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(t->listenfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_ANY) };
        if (bind(t->listenfd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
        if (listen(t->listenfd, 4096) < 0) die("listen");
        t->epfd = epoll_create1(EPOLL_CLOEXEC);
        t->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (t->epfd < 0 || t->timerfd < 0) die("epoll/timerfd");
        struct epoll_event ev = { .events = EPOLLIN, .data.fd = t->listenfd };
        epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->listenfd, &ev);
        ev.data.fd = t->timerfd;
        epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->timerfd, &ev);
    }
    printf("listening\n");
    fflush(stdout);
    for (int i = 1; i < threads; i++) pthread_create(&ts[i].thread, NULL, server_loop, &ts[i]);
    server_loop(&ts[0]);
    unsigned long accepted = 0, loopback6 = 0, requests = 0;
    unsigned long long bulk = 0;
    for (int i = 0; i < threads; i++) {
        if (i) pthread_join(ts[i].thread, NULL);
        accepted += ts[i].accepted; loopback6 += ts[i].from_loopback6;
        requests += ts[i].requests; bulk += ts[i].bulk_bytes;
    }
    printf("accepted=%lu from_127_0_0_6=%lu requests=%lu bulk_bytes=%llu\n", accepted, loopback6, requests, bulk);
    fflush(stdout);
    return 0;
}

// ------------------------------------------------------------------------------------------------
// Client

static const char small_request[] = "GET / HTTP/1.1\r\nHost: bench\r\n\r\n";

struct cconn {
    int fd, busy, dead;
    uint64_t due, sent;
    char head[4096];
    size_t headlen;
    int in_body, status;
    uint64_t body_left;
};

struct samples { uint64_t *v; size_t n, cap; };

static void samples_add(struct samples *s, uint64_t value) {
    if (s->n == s->cap) {
        // 64 M samples (512 MB) is far beyond any run this benchmark makes; beyond it, stop recording.
        if (s->cap >= (64u << 20)) return;
        s->cap = s->cap ? s->cap * 2 : 65536;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v) fail("out of memory");
    }
    s->v[s->n++] = value;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

// Nearest rank: the smallest recorded value with at least q of all values at or below it.
static double percentile_us(const struct samples *s, double q) {
    if (s->n == 0) return 0;
    size_t rank = (size_t)(q * (double)s->n + 0.999999999);
    if (rank < 1) rank = 1;
    if (rank > s->n) rank = s->n;
    return (double)s->v[rank - 1] / 1000.0;
}

struct client {
    int max_mode;
    struct sockaddr_in target;
    struct cconn *conns;
    int nconns, live, busy;
    int *idle; int nidle;
    uint64_t t0, window_start, window_end, rate;
    uint64_t next_index, next_due;
    struct samples latency, lag;
    unsigned long long completed, errors, in_window, total_ok;
};

static uint64_t due_time(const struct client *c, uint64_t index) {
    return c->t0 + (uint64_t)((__uint128_t)index * NS_PER_S / c->rate);
}

// The first request index due at or after `at`.
static uint64_t first_due_at(const struct client *c, uint64_t at) {
    if (at <= c->t0) return 0;
    uint64_t index = (uint64_t)((__uint128_t)(at - c->t0) * c->rate / NS_PER_S);
    while (due_time(c, index) < at) index++;
    while (index > 0 && due_time(c, index - 1) >= at) index--;
    return index;
}

static void cconn_fail(struct client *cl, struct cconn *c) {
    if (c->dead) return;
    if (c->busy && c->due >= cl->window_start && c->due < cl->window_end) cl->errors++;
    if (c->busy) cl->busy--;
    c->dead = 1;
    c->busy = 0;
    cl->live--;
    close(c->fd);
}

static int cconn_send(struct client *cl, struct cconn *c, uint64_t due) {
    c->due = due;
    c->sent = now_ns();
    c->busy = 1;
    c->headlen = 0;
    c->in_body = 0;
    cl->busy++;
    ssize_t n = send(c->fd, small_request, sizeof small_request - 1, MSG_NOSIGNAL);
    // An idle keep-alive connection's send buffer is empty: a short request always fits whole.
    if (n != (ssize_t)(sizeof small_request - 1)) { cconn_fail(cl, c); return -1; }
    return 0;
}

// Sends every request that is due, as long as a connection is idle (rate mode).
static void dispatch_due(struct client *cl, uint64_t now) {
    while (cl->nidle > 0 && cl->next_due <= now && cl->next_due < cl->window_end) {
        struct cconn *c = &cl->conns[cl->idle[--cl->nidle]];
        if (c->dead) continue;
        uint64_t due = cl->next_due;
        cl->next_index++;
        cl->next_due = due_time(cl, cl->next_index);
        cconn_send(cl, c, due);  // a failure is counted by cconn_fail
    }
}

static void response_done(struct client *cl, struct cconn *c) {
    uint64_t now = now_ns();
    c->busy = 0;
    cl->busy--;
    int measured = c->due >= cl->window_start && c->due < cl->window_end;
    if (c->status != 200) {
        if (measured) cl->errors++;
    } else {
        cl->total_ok++;
        if (measured) {
            cl->completed++;
            samples_add(&cl->latency, now - c->due);
            samples_add(&cl->lag, c->sent - c->due);
        }
        if (now >= cl->window_start && now < cl->window_end) cl->in_window++;
    }
    if (cl->max_mode) {
        if (now < cl->window_end) cconn_send(cl, c, now);
    } else {
        cl->idle[cl->nidle++] = (int)(c - cl->conns);
        dispatch_due(cl, now);
    }
}

// Feeds received bytes to the response parser; -1 on a protocol error.
static int cconn_receive(struct client *cl, struct cconn *c, const char *data, size_t n) {
    while (n > 0) {
        if (!c->busy) return -1;  // bytes nobody asked for
        if (!c->in_body) {
            size_t take = sizeof c->head - 1 - c->headlen;
            if (take > n) take = n;
            size_t scan_from = c->headlen > 3 ? c->headlen - 3 : 0;
            memcpy(c->head + c->headlen, data, take);
            c->headlen += take;
            c->head[c->headlen] = 0;
            char *end = memmem(c->head + scan_from, c->headlen - scan_from, "\r\n\r\n", 4);
            if (!end) {
                if (c->headlen == sizeof c->head - 1) return -1;
                data += take; n -= take;
                continue;
            }
            size_t head_bytes = (size_t)(end + 4 - c->head);
            size_t extra = c->headlen - head_bytes;  // body bytes copied along with the head
            if (strncmp(c->head, "HTTP/1.1 ", 9) != 0) return -1;
            c->status = atoi(c->head + 9);
            *end = 0;
            const char *field = strcasestr(c->head, "\r\ncontent-length:");
            if (!field) return -1;
            uint64_t length = strtoull(field + 17, NULL, 10);
            if (extra > length) return -1;
            c->body_left = length - extra;
            c->in_body = 1;
            data += take; n -= take;
        } else {
            size_t take = n < c->body_left ? n : (size_t)c->body_left;
            c->body_left -= take;
            data += take; n -= take;
        }
        if (c->in_body && c->body_left == 0) response_done(cl, c);
    }
    return 0;
}

static int connect_to(const struct sockaddr_in *target, int timeout_s) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    // A lost SYN would otherwise block for the kernel's retransmit schedule.
    struct timeval tv = { .tv_sec = timeout_s };
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (const struct sockaddr *)target, sizeof *target) < 0) die("connect");
    set_nodelay(fd);
    return fd;
}

static void parse_target(struct sockaddr_in *target, const char *host, const char *port) {
    memset(target, 0, sizeof *target);
    target->sin_family = AF_INET;
    target->sin_port = htons((uint16_t)atoi(port));
    if (inet_pton(AF_INET, host, &target->sin_addr) != 1) fail("HOST must be an IPv4 address");
}

static int run_load(int max_mode, const char *host, const char *port, double rate, int nconns,
                    double seconds, double warmup, double drain, long uid) {
    static char buffer[1 << 16];
    struct client cl = {0};
    cl.max_mode = max_mode;
    parse_target(&cl.target, host, port);
    if (nconns < 1 || nconns > 10000) fail("--conns must be 1-10000");
    if (!max_mode && (rate < 1 || rate > 10e6)) fail("--rate must be 1-10000000");
    if (seconds <= 0 || seconds > 3600 || warmup < 0 || warmup > 600 || drain < 0 || drain > 600) fail("bad --seconds/--warmup/--drain");
    // A timer expiring 50 us late (the default slack) would show up as 50 us of latency.
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    signal(SIGPIPE, SIG_IGN);
    drop_to(uid);
    cl.conns = calloc((size_t)nconns, sizeof *cl.conns);
    cl.idle = calloc((size_t)nconns, sizeof *cl.idle);
    cl.nconns = nconns;
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (epfd < 0 || tfd < 0) die("epoll/timerfd");
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)nconns };
    epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &ev);
    for (int i = 0; i < nconns; i++) {
        cl.conns[i].fd = connect_to(&cl.target, 5);
        set_nonblocking(cl.conns[i].fd);
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.u32 = (uint32_t)i;
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, cl.conns[i].fd, &ev) < 0) die("epoll_ctl");
        cl.idle[cl.nidle++] = nconns - 1 - i;
    }
    cl.live = nconns;
    cl.rate = max_mode ? 1 : (uint64_t)(rate + 0.5);
    cl.t0 = now_ns() + 1000000;  // 1 ms from now: the first due time is not already late
    cl.window_start = cl.t0 + (uint64_t)(warmup * 1e9);
    cl.window_end = cl.window_start + (uint64_t)(seconds * 1e9);
    uint64_t give_up = cl.window_end + (uint64_t)(drain * 1e9);
    cl.next_due = cl.t0;
    uint64_t timer_at = 0;
    if (max_mode) {
        while (now_ns() < cl.t0) {}
        uint64_t start = now_ns();
        for (int i = 0; i < nconns; i++) cconn_send(&cl, &cl.conns[i], start);
        cl.nidle = 0;
    }
    struct epoll_event events[256];
    for (;;) {
        uint64_t now = now_ns();
        if (!max_mode) dispatch_due(&cl, now);
        int schedule_done = max_mode ? now >= cl.window_end : cl.next_due >= cl.window_end;
        if ((schedule_done && cl.busy == 0) || now >= give_up || cl.live == 0) break;
        uint64_t want = 0;
        if (!max_mode && !schedule_done && cl.nidle > 0) want = cl.next_due;
        if (want != timer_at) { arm_timer(tfd, want); timer_at = want; }
        uint64_t left_ms = (give_up - now) / 1000000 + 1;
        int n = epoll_wait(epfd, events, 256, left_ms > 1000 ? 1000 : (int)left_ms);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < n; i++) {
            uint32_t index = events[i].data.u32;
            if (index == (uint32_t)nconns) {
                uint64_t expirations;
                if (read(tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN) die("read timerfd");
                timer_at = 0;
                continue;
            }
            struct cconn *c = &cl.conns[index];
            if (c->dead) continue;
            for (int round = 0; round < 16; round++) {
                ssize_t r = recv(c->fd, buffer, sizeof buffer, 0);
                if (r > 0) {
                    if (cconn_receive(&cl, c, buffer, (size_t)r) < 0) { cconn_fail(&cl, c); break; }
                    if ((size_t)r < sizeof buffer) break;
                    continue;
                }
                if (r == 0 || (errno != EAGAIN && errno != EINTR)) cconn_fail(&cl, c);
                break;
            }
        }
    }
    // Requests due in the window that never completed: never sent (no idle connection in time) or sent
    // and not answered before the drain ended.
    unsigned long long due_in_window = 0;
    if (max_mode) {
        due_in_window = cl.completed + cl.errors + (unsigned long long)cl.busy;
    } else {
        due_in_window = first_due_at(&cl, cl.window_end) - first_due_at(&cl, cl.window_start);
    }
    unsigned long long unfinished = due_in_window - cl.completed - cl.errors;
    qsort(cl.latency.v, cl.latency.n, sizeof(uint64_t), cmp_u64);
    qsort(cl.lag.v, cl.lag.n, sizeof(uint64_t), cmp_u64);
    double mean = 0;
    for (size_t i = 0; i < cl.latency.n; i++) mean += (double)cl.latency.v[i];
    if (cl.latency.n) mean /= (double)cl.latency.n * 1000.0;
    printf("mode=%s target_rps=%.0f conns=%d seconds=%g rps=%.1f completed=%llu unfinished=%llu errors=%llu total_ok=%llu "
           "p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f mean_us=%.1f "
           "lag_p50_us=%.1f lag_p99_us=%.1f lag_max_us=%.1f\n",
           max_mode ? "max" : "rate", max_mode ? 0.0 : rate, nconns, seconds, (double)cl.in_window / seconds,
           cl.completed, unfinished, cl.errors, cl.total_ok,
           percentile_us(&cl.latency, 0.50), percentile_us(&cl.latency, 0.90), percentile_us(&cl.latency, 0.99),
           percentile_us(&cl.latency, 0.999), percentile_us(&cl.latency, 1.0), mean,
           percentile_us(&cl.lag, 0.50), percentile_us(&cl.lag, 0.99), percentile_us(&cl.lag, 1.0));
    fflush(stdout);
    return cl.completed > 0 ? 0 : 1;
}

static int run_bulk(const char *host, const char *port, unsigned long long bytes, double timeout, long uid) {
    static char buffer[1 << 18];
    struct sockaddr_in target;
    parse_target(&target, host, port);
    signal(SIGPIPE, SIG_IGN);
    drop_to(uid);
    int fd = connect_to(&target, 5);
    char request[128];
    int length = snprintf(request, sizeof request, "GET /bulk/%llu HTTP/1.1\r\nHost: bench\r\n\r\n", bytes);
    uint64_t start = now_ns(), deadline = start + (uint64_t)(timeout * 1e9), first = 0;
    if (send(fd, request, (size_t)length, MSG_NOSIGNAL) != length) die("send");
    char head[4096];
    size_t headlen = 0;
    unsigned long long body = 0;
    char *end = NULL;
    while (!end) {
        ssize_t r = recv(fd, head + headlen, sizeof head - 1 - headlen, 0);
        if (r <= 0) die("bulk: reading the response head");
        if (!first) first = now_ns();
        headlen += (size_t)r;
        head[headlen] = 0;
        end = strstr(head, "\r\n\r\n");
        if (!end && headlen == sizeof head - 1) fail("bulk: response head too long");
    }
    if (strncmp(head, "HTTP/1.1 200", 12) != 0) fail("bulk: status is not 200");
    body = headlen - (size_t)(end + 4 - head);
    // Bounded by bytes and by the deadline (SO_RCVTIMEO makes a stalled recv return).
    while (body < bytes) {
        if (now_ns() > deadline) { fprintf(stderr, "httpload: bulk: deadline passed after %llu bytes\n", body); return 1; }
        ssize_t r = recv(fd, buffer, sizeof buffer, 0);
        if (r <= 0) {
            fprintf(stderr, "httpload: bulk: %s after %llu of %llu bytes\n", r == 0 ? "connection closed" : strerror(errno), body, bytes);
            return 1;
        }
        body += (unsigned long long)r;
    }
    uint64_t elapsed = now_ns() - start;
    close(fd);
    if (body != bytes) { fprintf(stderr, "httpload: bulk: %llu bytes received, %llu expected\n", body, bytes); return 1; }
    printf("mode=bulk bytes=%llu seconds=%.6f gbps=%.3f first_byte_us=%.1f\n", body, (double)elapsed / 1e9,
           (double)body * 8.0 / ((double)elapsed / 1e9) / 1e9, (double)(first - start) / 1000.0);
    fflush(stdout);
    return 0;
}

static int run_spin(double seconds) {
    if (seconds <= 0 || seconds > 7200) fail("spin needs SECONDS in 0-7200");
    struct sched_param param = {0};
    if (sched_setscheduler(0, SCHED_IDLE, &param) < 0) die("sched_setscheduler SCHED_IDLE");
    uint64_t end = now_ns() + (uint64_t)(seconds * 1e9);
    volatile uint64_t counter = 0;
    while (now_ns() < end) {
        for (int i = 0; i < 100000; i++) counter++;
    }
    return 0;
}

// ------------------------------------------------------------------------------------------------

static void usage(void) {
    fputs("usage: httpload serve PORT [--threads N] [--delay-us D] [--uid U]\n"
          "       httpload rate HOST PORT --rate R --conns C --seconds S [--warmup W] [--drain D] [--uid U]\n"
          "       httpload max HOST PORT --conns C --seconds S [--warmup W] [--uid U]\n"
          "       httpload bulk HOST PORT --bytes N [--timeout S] [--uid U]\n"
          "       httpload spin SECONDS\n", stderr);
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 3) usage();
    const char *mode = argv[1];
    if (!strcmp(mode, "spin")) return run_spin(atof(argv[2]));
    int positional = strcmp(mode, "serve") == 0 ? 1 : 2;
    if (argc < 2 + positional) usage();
    double rate = 0, seconds = 10, warmup = 1, drain = 5, timeout = 120;
    int conns = 16, threads = 1;
    long uid = -1, delay_us = 0;
    unsigned long long bytes = 0;
    for (int i = 2 + positional; i < argc; i++) {
        if (i + 1 >= argc) usage();
        const char *flag = argv[i], *value = argv[++i];
        if (!strcmp(flag, "--rate")) rate = atof(value);
        else if (!strcmp(flag, "--conns")) conns = atoi(value);
        else if (!strcmp(flag, "--seconds")) seconds = atof(value);
        else if (!strcmp(flag, "--warmup")) warmup = atof(value);
        else if (!strcmp(flag, "--drain")) drain = atof(value);
        else if (!strcmp(flag, "--timeout")) timeout = atof(value);
        else if (!strcmp(flag, "--uid")) uid = atol(value);
        else if (!strcmp(flag, "--threads")) threads = atoi(value);
        else if (!strcmp(flag, "--delay-us")) delay_us = atol(value);
        else if (!strcmp(flag, "--bytes")) bytes = strtoull(value, NULL, 10);
        else usage();
    }
    if (!strcmp(mode, "serve")) {
        if (threads < 1 || threads > 64 || delay_us < 0 || delay_us > 10000000) fail("bad --threads/--delay-us");
        return run_server(atoi(argv[2]), threads, delay_us, uid);
    }
    if (!strcmp(mode, "rate")) return run_load(0, argv[2], argv[3], rate, conns, seconds, warmup, drain, uid);
    if (!strcmp(mode, "max")) return run_load(1, argv[2], argv[3], 0, conns, seconds, warmup, drain, uid);
    if (!strcmp(mode, "bulk")) {
        if (bytes == 0 || timeout <= 0 || timeout > 3600) fail("bulk needs --bytes N > 0 and --timeout 0-3600");
        return run_bulk(argv[2], argv[3], bytes, timeout, uid);
    }
    usage();
    return 2;
}
