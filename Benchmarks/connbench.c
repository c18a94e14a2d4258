// New-TCP-connection rate through the capture rules.
//
//   connbench listen PORT SECONDS
//       Accept and close on 0.0.0.0:PORT until SECONDS have passed (the redirect target, 15001).
//   connbench connect ADDR PORT SECONDS UID MAXCOUNT
//       Drop to UID/GID first (so the proxy-owner rules do not match and every SYN walks the whole
//       nat output chain), then open/connect/close in a loop until SECONDS or MAXCOUNT.
//       Prints "ok=N failed=M seconds=S rate=R lasterrno=E".
//
// Closing with SO_LINGER 0 sends a reset instead of a FIN, so neither side keeps a TIME_WAIT
// socket and ephemeral ports never run out however long the loop runs.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int run_listener(int port, int seconds) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) { perror("socket"); return 1; }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY) };
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) { perror("bind"); return 1; }
    if (listen(fd, 4096) < 0) { perror("listen"); return 1; }
    // accept() blocks; the receive timeout lets the deadline be checked while idle.
    struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    printf("listening\n");
    fflush(stdout);
    double deadline = now() + seconds;
    unsigned long accepted = 0;
    // A plain close (FIN), not a reset: conntrack only starts a fresh entry for a reused port when the
    // old connection was closed by a FIN or reset by the client; after a server-side reset it would
    // let the next SYN ride the old entry and its NAT binding, skipping the nat chain being measured.
    while (now() < deadline) {
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) continue;
        close(c);
        accepted++;
    }
    fprintf(stderr, "accepted=%lu\n", accepted);
    return 0;
}

static int run_client(const char *addr, int port, double seconds, int uid, unsigned long maxcount) {
    if (setgroups(0, NULL) < 0 || setgid(uid) < 0 || setuid(uid) < 0) { perror("setuid"); return 1; }
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) { fprintf(stderr, "bad address %s\n", addr); return 1; }
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    // A lost SYN would otherwise block for the kernel's retransmit schedule (minutes).
    struct timeval tv = { .tv_sec = 1, .tv_usec = 0 };
    unsigned long ok = 0, failed = 0;
    int lastErrno = 0;
    double start = now(), deadline = start + seconds, t = start;
    while (ok + failed < maxcount) {
        // Checking the clock every 64 connections keeps its cost out of the measured loop.
        if (((ok + failed) & 63) == 0) { t = now(); if (t >= deadline) break; }
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) { failed++; lastErrno = errno; continue; }
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) ok++; else { failed++; lastErrno = errno; }
        close(fd);
    }
    double elapsed = now() - start;
    printf("ok=%lu failed=%lu seconds=%.3f rate=%.0f lasterrno=%d\n", ok, failed, elapsed, ok / elapsed, lastErrno);
    return 0;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    if (argc == 4 && strcmp(argv[1], "listen") == 0) {
        int seconds = atoi(argv[3]);
        alarm(seconds + 5);  // hard stop even if the loop misbehaves
        return run_listener(atoi(argv[2]), seconds);
    }
    if (argc == 7 && strcmp(argv[1], "connect") == 0) {
        double seconds = atof(argv[4]);
        if (seconds <= 0 || seconds > 60) { fprintf(stderr, "seconds must be in (0, 60]\n"); return 2; }
        alarm((unsigned)seconds + 10);
        return run_client(argv[2], atoi(argv[3]), seconds, atoi(argv[5]), strtoul(argv[6], NULL, 10));
    }
    fprintf(stderr, "usage: connbench listen PORT SECONDS | connbench connect ADDR PORT SECONDS UID MAXCOUNT\n");
    return 2;
}
