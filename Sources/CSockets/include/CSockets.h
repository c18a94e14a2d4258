#ifndef SLUICE_CSOCKETS_H
#define SLUICE_CSOCKETS_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

// Linux calls that Swift's Glibc module does not export (they are _GNU_SOURCE or live in headers
// outside its module map). Each wrapper keeps the kernel's return convention: -1 with errno set.

// epoll event bits, with the kernel's values, so Swift need not import <sys/epoll.h>.
#define SLUICE_EPOLLIN 0x001u
#define SLUICE_EPOLLOUT 0x004u
#define SLUICE_EPOLLERR 0x008u
#define SLUICE_EPOLLHUP 0x010u
#define SLUICE_EPOLLRDHUP 0x2000u
#define SLUICE_EPOLLEXCLUSIVE 0x10000000u
#define SLUICE_EPOLLET 0x80000000u

int sluice_epoll_create(void);
int sluice_epoll_add(int epoll_fd, int fd, uint32_t events, uint64_t token);
int sluice_epoll_modify(int epoll_fd, int fd, uint32_t events, uint64_t token);
int sluice_epoll_remove(int epoll_fd, int fd);
/// Waits for at most `capacity` (<= 512) events; fills `tokens` and `events` pairwise.
int sluice_epoll_wait(int epoll_fd, uint64_t *tokens, uint32_t *events, int capacity, int timeout_ms);

/// accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC; the peer address is read later when needed.
int sluice_accept(int listen_fd);
/// A non-blocking, close-on-exec pipe.
int sluice_pipe(int fds[2]);
/// fcntl(F_SETPIPE_SZ); returns the capacity the kernel granted.
int sluice_set_pipe_size(int fd, int bytes);
/// splice(2) between a socket and a pipe, non-blocking, pages moved rather than copied where the
/// kernel can.
ssize_t sluice_splice(int from_fd, int to_fd, size_t length);
/// A non-blocking, close-on-exec eventfd counter, to wake an epoll loop from another thread.
int sluice_eventfd(void);

/// CPUs this process may run on (its affinity mask), or -1 when the kernel will not say.
int sluice_available_cpus(void);

#endif
