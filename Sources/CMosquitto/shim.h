#ifndef LANYARD_CMOSQUITTO_SHIM_H
#define LANYARD_CMOSQUITTO_SHIM_H
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <sys/epoll.h>
#include <stdint.h>
#include <unistd.h>

// Macros Swift does not import reliably (shift expressions), as functions.
static inline int lanyard_mosq_log_err(void) { return MOSQ_LOG_ERR; }
static inline int lanyard_mosq_log_warning(void) { return MOSQ_LOG_WARNING; }
static inline int lanyard_mosq_log_notice(void) { return MOSQ_LOG_NOTICE; }
static inline int lanyard_mqtt_protocol_v5(void) { return MQTT_PROTOCOL_V5; }


// epoll for MQTTPoller (many libmosquitto sockets on one thread). Glibc's
// Swift module does not export sys/epoll.h, and struct epoll_event is packed:
// these wrappers take and return plain values.
static inline int lanyard_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }
static inline uint32_t lanyard_epoll_in(void) { return EPOLLIN; }
static inline uint32_t lanyard_epoll_out(void) { return EPOLLOUT; }
static inline uint32_t lanyard_epoll_hup_err(void) { return EPOLLHUP | EPOLLERR; }
// op: 0 add, 1 modify, 2 delete.
static inline int lanyard_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t token) {
    struct epoll_event event;
    event.events = events;
    event.data.u64 = token;
    int ops[3] = { EPOLL_CTL_ADD, EPOLL_CTL_MOD, EPOLL_CTL_DEL };
    if (op < 0 || op > 2) return -1;
    return epoll_ctl(epfd, ops[op], fd, &event);
}
// Waits; fills tokens[i] and events[i] for each ready registration (at most max, <= 256).
static inline int lanyard_epoll_wait(int epfd, uint64_t *tokens, uint32_t *events, int max, int timeout_ms) {
    struct epoll_event ready[256];
    if (max > 256) max = 256;
    int n = epoll_wait(epfd, ready, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        tokens[i] = ready[i].data.u64;
        events[i] = ready[i].events;
    }
    return n;
}

#endif
