#ifndef LANYARD_CMOSQUITTO_SHIM_H
#define LANYARD_CMOSQUITTO_SHIM_H
#include <mosquitto.h>
#include <mqtt_protocol.h>
#endif
