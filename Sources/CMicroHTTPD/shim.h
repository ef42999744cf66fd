#ifndef LANYARD_CMICROHTTPD_SHIM_H
#define LANYARD_CMICROHTTPD_SHIM_H
// libmicrohttpd (Debian 0.9.75, TLS through GnuTLS) for the controller's
// HTTPS admin API. MHD_start_daemon is variadic, which Swift cannot call:
// lanyard_mhd_start_https passes every option through MHD_OPTION_ARRAY.
#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <microhttpd.h>

/// Starts an HTTPS daemon bound to `bind_addr` with the PEM key and
/// certificate held in memory (GnuTLS copies them while starting).
static inline struct MHD_Daemon *lanyard_mhd_start_https(
    unsigned int flags, uint16_t port, const struct sockaddr *bind_addr,
    MHD_AccessHandlerCallback handler, void *handler_cls,
    MHD_RequestCompletedCallback completed, void *completed_cls,
    const char *key_pem, const char *cert_pem,
    unsigned int connection_timeout, unsigned int connection_limit, size_t memory_limit) {
    struct MHD_OptionItem options[] = {
        { MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)key_pem },
        { MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)cert_pem },
        { MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)"SECURE256:+SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2" },
        { MHD_OPTION_SOCK_ADDR, 0, (void *)bind_addr },
        { MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)completed, completed_cls },
        { MHD_OPTION_CONNECTION_TIMEOUT, connection_timeout, NULL },
        { MHD_OPTION_CONNECTION_LIMIT, connection_limit, NULL },
        { MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)memory_limit, NULL },
        { MHD_OPTION_END, 0, NULL }
    };
    return MHD_start_daemon(flags | MHD_USE_TLS, port, NULL, NULL, handler, handler_cls,
                            MHD_OPTION_ARRAY, options, MHD_OPTION_END);
}

/// A response holding a copy of `data` (Swift cannot name the enum constants
/// that `_MHD_FIXED_ENUM` imports as closed Swift enums with stripped names).
static inline struct MHD_Response *lanyard_mhd_response_copy(size_t size, const void *data) {
    return MHD_create_response_from_buffer(size, (void *)data, MHD_RESPMEM_MUST_COPY);
}

/// The value of request header `name`, or NULL.
static inline const char *lanyard_mhd_header(struct MHD_Connection *connection, const char *name) {
    return MHD_lookup_connection_value(connection, MHD_HEADER_KIND, name);
}

#endif
