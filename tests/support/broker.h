/*
 * Test support: a real Mosquitto broker, long-running processes, waits.
 *
 * For the broker tests (tests/integration/test_agent_broker.c,
 * test_rotation_e2e.c), which run the real certfleetd, certfleet-sim and
 * certfleet-agent against a real Mosquitto over mutual TLS.
 *
 * The broker: cf_test_broker_start() fills a directory with a broker CA
 * and a server certificate for 127.0.0.1 / localhost (made with the openssl
 * command), a mosquitto.conf (one listener on 127.0.0.1, client
 * certificates required and checked against a given bundle, persistence
 * in the directory, everything logged to DIR/mosquitto.log) and starts
 * `mosquitto -c DIR/mosquitto.conf`, tracked by its PID. The port is found
 * by binding port 0 and closing it; when another process takes it before
 * Mosquitto does, the start is retried on a new port. A restart keeps the
 * port and, through the persistence file written at SIGTERM, every
 * persistent session and its queued QoS 1 messages.
 *
 * Long-running processes (certfleetd, the simulator, mosquitto_sub):
 * cf_test_bg_start() runs one in its own process group, with stdout and
 * stderr appended to files, and asks the kernel to SIGKILL it when the
 * test process dies (PR_SET_PDEATHSIG), so a crashed or timed-out test
 * leaves no server behind. cf_test_bg_free() kills what is still running.
 *
 * Every wait here is bounded by a timeout in milliseconds. Functions
 * return 0 on success and -1 on failure with a message on stderr, as in
 * support/run.h.
 */
#ifndef CF_TEST_BROKER_H
#define CF_TEST_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* How long a broker may take to accept TCP after its start. */
#define CF_TEST_BROKER_START_MS 10000
/* How long a SIGTERM'd process gets before SIGKILL. */
#define CF_TEST_STOP_MS 10000

/* ---- long-running processes -------------------------------------------------- */

typedef struct cf_test_bg cf_test_bg; /* opaque */

/*
 * Start argv[0] (looked up in PATH unless it contains a slash) in its own
 * process group, stdin on /dev/null, stdout appended to out_path and stderr
 * to err_path (the same path for both is fine; NULL: /dev/null). The caller
 * releases *out with cf_test_bg_free(). Fails when the program cannot be
 * executed.
 */
int cf_test_bg_start(cf_test_bg **out, const char *const *argv, const char *out_path,
		     const char *err_path);

/* The PID, for messages. */
pid_t cf_test_bg_pid(const cf_test_bg *p);

/* Whether it is still running (reaps it when it has exited). */
bool cf_test_bg_running(cf_test_bg *p);

/* Send sig to the process (not its group). -1 when it has already exited. */
int cf_test_bg_signal(cf_test_bg *p, int sig);

/*
 * Wait at most timeout_ms for it to exit. Returns its status: the exit
 * code, or 128 + N when killed by signal N; -1 when it is still running.
 * Once reaped, the status is kept and returned again.
 */
int cf_test_bg_wait(cf_test_bg *p, int timeout_ms);

/*
 * SIGTERM, then SIGKILL to the whole group if it has not exited within
 * timeout_ms (0: CF_TEST_STOP_MS). Returns its status as cf_test_bg_wait().
 */
int cf_test_bg_stop(cf_test_bg *p, int timeout_ms);

/* SIGKILL the group if still running, reap, free. NULL is accepted. */
void cf_test_bg_free(cf_test_bg *p);

/* ---- bounded waits ----------------------------------------------------------- */

/* A monotonic clock in milliseconds, for measuring waits. */
int64_t cf_test_now_ms(void);

/* A condition polled by cf_test_wait_until(); true ends the wait. */
typedef bool (*cf_test_cond)(void *payload);

/*
 * Call cond every interval_ms until it returns true (0) or timeout_ms
 * has passed (-1).
 */
int cf_test_wait_until(cf_test_cond cond, void *payload, int interval_ms, int timeout_ms);

/* The number of (non-overlapping) occurrences of needle in the file; 0 when it is missing. */
size_t cf_test_file_count(const char *path, const char *needle);

/*
 * Wait at most timeout_ms until the file holds needle at least n times.
 * 0 when it does, -1 on timeout.
 */
int cf_test_file_wait(const char *path, const char *needle, size_t n, int timeout_ms);

/* ---- the broker -------------------------------------------------------------- */

typedef struct cf_test_broker cf_test_broker; /* opaque */

/*
 * Make dir (created when missing) with broker-ca.pem, server.pem/.key and
 * mosquitto.conf, and start Mosquitto on a free port of 127.0.0.1; returns
 * once it accepts TCP connections. client_ca_file is the bundle client
 * certificates must chain to (the certfleet root and intermediates).
 * extra_conf (may be NULL) is appended to mosquitto.conf. The caller
 * releases *out with cf_test_broker_free(). When the environment variable
 * CF_TEST_BROKER_PRELOAD is set, Mosquitto runs with it as LD_PRELOAD (the
 * sanitizer runtime that a plugin built with -fsanitize needs).
 */
int cf_test_broker_start(cf_test_broker **out, const char *dir, const char *client_ca_file,
			 const char *extra_conf);

/*
 * The mosquitto.conf lines that load this build's certfleet_broker.so on the
 * registry file, refreshing every refresh_ms: the extra_conf of a broker
 * that enforces the registry and the policies (docs/broker.md). In a
 * sanitizer build it also sets CF_TEST_BROKER_PRELOAD. NULL when the plugin
 * is not built. The caller frees the text.
 */
char *cf_test_broker_plugin_conf(const char *registry, int refresh_ms);

/* The port it listens on (kept across restarts). */
int cf_test_broker_port(const cf_test_broker *b);

/* DIR/broker-ca.pem: the CA of the broker's server certificate, for clients. */
const char *cf_test_broker_ca_file(const cf_test_broker *b);

/* DIR/mosquitto.log: the broker's log (log_type all), appended across restarts. */
const char *cf_test_broker_log_file(const cf_test_broker *b);

/* Whether the broker process is running. */
bool cf_test_broker_running(cf_test_broker *b);

/*
 * Stop it: SIGTERM (Mosquitto then writes its persistence file), SIGKILL
 * after CF_TEST_STOP_MS. -1 when it did not exit by itself with status 0.
 */
int cf_test_broker_stop(cf_test_broker *b);

/* Stop it if running and start it again on the same port; waits until it accepts TCP. */
int cf_test_broker_restart(cf_test_broker *b);

/* Stop it if running, free. The directory stays (the caller's temp dir). NULL is accepted. */
void cf_test_broker_free(cf_test_broker *b);

/* ---- mosquitto_pub / mosquitto_sub as a client of the broker ----------------- */

/*
 * mosquitto_pub -q 1 of payload to topic over mutual TLS with the client
 * certificate cert (PEM, leaf first) and its key; the broker's name is
 * checked against broker-ca.pem. 0 once the broker acknowledged it.
 */
int cf_test_mqtt_pub(const cf_test_broker *b, const char *cert, const char *key, const char *topic,
		     const char *payload);

/*
 * Start mosquitto_sub -v -q 1 with a persistent session (-c) as client_id,
 * subscribed to the NULL-terminated topics, printing "TOPIC PAYLOAD" lines
 * to out_path; returns once the broker has acknowledged the subscription
 * (its log shows the SUBACK). The caller frees *out with cf_test_bg_free().
 */
int cf_test_mqtt_sub_start(cf_test_bg **out, const cf_test_broker *b, const char *cert,
			   const char *key, const char *client_id, const char *const *topics,
			   const char *out_path);

#endif
