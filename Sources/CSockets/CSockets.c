#include "CSockets.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

int sluice_epoll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

static int control(int epoll_fd, int operation, int fd, uint32_t events, uint64_t token) {
    struct epoll_event event = { .events = events, .data = { .u64 = token } };
    return epoll_ctl(epoll_fd, operation, fd, &event);
}

int sluice_epoll_add(int epoll_fd, int fd, uint32_t events, uint64_t token) {
    return control(epoll_fd, EPOLL_CTL_ADD, fd, events, token);
}

int sluice_epoll_modify(int epoll_fd, int fd, uint32_t events, uint64_t token) {
    return control(epoll_fd, EPOLL_CTL_MOD, fd, events, token);
}

int sluice_epoll_remove(int epoll_fd, int fd) {
    struct epoll_event unused = { 0 };
    return epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, &unused);
}

int sluice_epoll_wait(int epoll_fd, uint64_t *tokens, uint32_t *events, int capacity, int timeout_ms) {
    struct epoll_event ready[512];
    if (capacity > 512) capacity = 512;
    int count = epoll_wait(epoll_fd, ready, capacity, timeout_ms);
    for (int i = 0; i < count; i++) {
        tokens[i] = ready[i].data.u64;
        events[i] = ready[i].events;
    }
    return count;
}

int sluice_accept(int listen_fd) {
    return accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int sluice_pipe(int fds[2]) {
    return pipe2(fds, O_NONBLOCK | O_CLOEXEC);
}

int sluice_set_pipe_size(int fd, int bytes) {
    return fcntl(fd, F_SETPIPE_SZ, bytes);
}

ssize_t sluice_splice(int from_fd, int to_fd, size_t length) {
    return splice(from_fd, NULL, to_fd, NULL, length, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
}

int sluice_eventfd(void) {
    return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

int sluice_available_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
    return CPU_COUNT(&set);
}
