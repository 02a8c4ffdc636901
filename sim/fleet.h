/*
 * fleet.h: private to loop.c and device.c. One virtual device, and the
 * loop that owns them all.
 */
#ifndef CF_SIM_FLEET_H
#define CF_SIM_FLEET_H

#include <mosquitto.h>
#include <openssl/x509.h>

#include "sim.h"

typedef enum {
	DEV_CLOSED = 0, /* no connection; the agent's timers run (reconnect backoff) */
	DEV_QUEUED,     /* holds a CONNECT action, waiting for a handshake slot */
	DEV_CONNECTING, /* TCP + TLS + MQTT CONNECT under way */
	DEV_UP,         /* CONNACK accepted */
	DEV_OFFLINE,    /* offline fault: disconnected until deadline */
	DEV_CRASHED,    /* crash fault: no agent until deadline, then reopened from disk */
	DEV_DEAD        /* the agent cannot go on (unreadable state); left alone */
} sim_dev_state;

/* A publish waiting for its PUBACK. */
struct sim_pub {
	int mid;
	unsigned long id; /* the agent's action id */
	bool is_ack;      /* a crt_ack */
};

#define SIM_DEV_PUBS 8

typedef struct sim_loop sim_loop;

typedef struct sim_dev {
	sim_loop *loop;
	char *name;
	char *dir;
	sim_fault_set faults;
	cf_agent *agent;
	struct mosquitto *mosq;
	int fd;          /* registered with epoll, or -1 */
	uint32_t gen;    /* client generation, in the epoll data: stale events are told apart */
	uint32_t events; /* what it is registered for */
	sim_dev_state state;
	/* The CONNECT being carried out; the identity is borrowed from the agent, which is
	 * not called between taking the action and starting the connection. */
	unsigned long connect_id;
	cf_agent_identity ident;
	int64_t wake_at;  /* next cf_agent_tick() */
	int64_t deadline; /* CONNECTING: give up; OFFLINE, CRASHED: come back */
	int64_t misc_at;  /* next mosquitto_loop_misc() (keepalive) */
	bool tcp_up;      /* CONNECTING: the TCP connect finished */
	bool refused;     /* CONNECTING: CONNACK with an error */
	bool go_offline;  /* set in a callback, done after it */
	bool crash_now;   /* set in a callback, done after it */
	bool offline_done, crash_done, rotated;
	int subacks;
	struct sim_pub pubs[SIM_DEV_PUBS];
	size_t npubs;
	char first_cert[65]; /* certificateId when the run started */
} sim_dev;

struct sim_loop {
	const sim_run_opts *opts;
	sim_stats *stats;
	X509_STORE *store;
	sim_dev *devs;
	size_t n;
	int ep;
	bool host_is_ip;
	/* Devices holding a CONNECT, in order (a ring of indices). */
	size_t *queue;
	size_t qhead, qlen;
	long connecting;
	size_t cursor; /* where the next timer scan starts */
	double tokens; /* connect rate limit */
	int64_t tokens_at;
	int64_t now;
};

/* device.c */
int sim_dev_open(sim_loop *L, sim_dev *d, bool first, cf_agent_err *err);
void sim_dev_pump(sim_loop *L, sim_dev *d);
void sim_dev_connect_start(sim_loop *L, sim_dev *d);
void sim_dev_on_event(sim_loop *L, sim_dev *d, uint32_t events);
void sim_dev_timer(sim_loop *L, sim_dev *d);
void sim_dev_close(sim_loop *L, sim_dev *d);

/* loop.c */
void sim_loop_queue(sim_loop *L, sim_dev *d);
/*
 * libmosquitto's mosquitto_new() makes a socket pair per client for its
 * own threaded loop; we never use it, and 10,000 clients would need 20,000
 * more descriptors. While blocked, socketpair() fails with EMFILE and
 * libmosquitto carries on without (it only logs a warning).
 */
void sim_socketpair_block(bool block);

#endif
