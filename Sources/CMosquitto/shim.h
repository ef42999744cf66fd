#ifndef LANYARD_CMOSQUITTO_SHIM_H
#define LANYARD_CMOSQUITTO_SHIM_H
#include <mosquitto.h>
#include <mqtt_protocol.h>

// Macros Swift does not import reliably (shift expressions), as functions.
static inline int lanyard_mosq_log_err(void) { return MOSQ_LOG_ERR; }
static inline int lanyard_mosq_log_warning(void) { return MOSQ_LOG_WARNING; }
static inline int lanyard_mosq_log_notice(void) { return MOSQ_LOG_NOTICE; }
static inline int lanyard_mqtt_protocol_v5(void) { return MQTT_PROTOCOL_V5; }

#endif
