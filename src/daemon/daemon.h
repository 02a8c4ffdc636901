/*
 * daemon: certfleetd's wiring and main loop.
 *
 * One thread. The loop runs the MQTT connection (cf_mqtt_step), hands
 * device messages to the rotation engine, runs the engine's timers every
 * second, and publishes the store's outbox: rows are published in id order
 * after the transaction that wrote them committed, and deleted once the
 * broker acknowledged them (PUBACK), so a daemon killed at any instant
 * publishes what is left when it starts again. Rows written by other
 * processes (certfleet rotate start) are picked up within a second.
 */
#ifndef CF_DAEMON_DAEMON_H
#define CF_DAEMON_DAEMON_H

#include <signal.h>
#include <stdbool.h>

#include "daemon/config.h"
#include "util/util.h"

typedef struct cf_daemon cf_daemon; /* opaque */

/*
 * Open the registry and build the authority, the rotation engine and the
 * MQTT client from cfg (borrowed until cf_daemon_free(); the daemon keeps
 * its own copy after a reload). Bad TLS files, an unreadable registry or
 * CA passphrase are refused here, before anything runs.
 */
int cf_daemon_new(cf_daemon **out, cf_config *cfg, cf_err *err);

/*
 * Run until *stop is set: then stop taking outbox rows, wait (at most
 * drain_ms) for the broker to acknowledge what is in flight, disconnect.
 * When *reload is set, re-read config_path (and clear *reload): a bad file
 * is logged and the running configuration kept. Returns CF_OK after a
 * clean stop.
 */
int cf_daemon_run(cf_daemon *d, const char *config_path, volatile sig_atomic_t *stop,
		  volatile sig_atomic_t *reload, int drain_ms, cf_err *err);

void cf_daemon_free(cf_daemon *d);

#endif
