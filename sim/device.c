/*
 * One virtual device: a cf_agent driven through the step API, plus its own
 * libmosquitto client whose socket the loop watches with epoll.
 *
 * How it works
 * ------------
 * The agent decides, the device carries out. sim_dev_pump() takes the
 * agent's actions one by one: SUBSCRIBE and PUBLISH go straight to
 * libmosquitto (which writes at once outside its callbacks); CONNECT drops
 * the connection and parks the device in the loop's queue (DEV_QUEUED)
 * until a handshake slot is free, because 10,000 devices that all want to
 * connect at once would only make the broker time them out. The agent is
 * not called while a device holds a CONNECT, so the identity it lent us
 * (SSL_CTX, client id) stays valid until the connection starts.
 *
 * A connection is mosquitto_connect_async() with the identity's ready
 * SSL_CTX (MOSQ_OPT_SSL_CTX, no defaults, so no file is read), then epoll
 * events: the first EPOLLOUT means TCP is up; reads drive the TLS
 * handshake (libmosquitto continues it in mosquitto_loop_read()) and bring
 * the CONNACK, whose callback reports to the agent at once, before any
 * queued message of the persistent session reaches it. A failure before
 * the CONNACK is UNREACHABLE while TCP was not up, else REFUSED (with TLS
 * 1.3 a refused client certificate is an alert after the handshake).
 *
 * libmosquitto callbacks only set flags or call the agent; closing a
 * client, crashing or going offline happens after the libmosquitto call
 * returns (after()). Every state change goes through set_state(), which
 * keeps the loop's counters right.
 *
 * Faults: the sim intercepts csr_req (ignore, bad/weak CSR, reuse_key
 * rewrites it to rekey=false for the agent) and crt (refuse_cert); crashes
 * and offline periods are taken at the agent's own events.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "fleet.h"

#define CONNECT_TIMEOUT_MS 30000
#define CRASH_DELAY_MS     1000
#define PUMP_MAX           64

/* The broker's name, checked in its certificate (one broker per process). */
static const char *broker_host;

static void
set_state(sim_loop *L, sim_dev *d, sim_dev_state st)
{
	sim_stats *s = L->stats;

	switch (d->state) {
	case DEV_CONNECTING:
		L->connecting--;
		s->connecting--;
		break;
	case DEV_UP:
		s->connected--;
		break;
	case DEV_OFFLINE:
	case DEV_CRASHED:
		s->offline--;
		break;
	default:
		break;
	}
	switch (st) {
	case DEV_CONNECTING:
		L->connecting++;
		s->connecting++;
		break;
	case DEV_UP:
		s->connected++;
		break;
	case DEV_OFFLINE:
	case DEV_CRASHED:
		s->offline++;
		break;
	default:
		break;
	}
	d->state = st;
}

/* ---- epoll registration ------------------------------------------------------ */

/* Bring the epoll registration in line with the client's socket and wishes. */
static void
watch(sim_loop *L, sim_dev *d)
{
	struct epoll_event ev;
	int fd = d->mosq != NULL ? mosquitto_socket(d->mosq) : -1;
	uint32_t want;

	/* libmosquitto closed our socket: its registration went with it. */
	if (fd != d->fd) {
		d->fd = -1;
		d->events = 0;
	}
	if (fd < 0)
		return;
	want = EPOLLIN;
	/* While connecting, EPOLLOUT only until TCP is up: the handshake is read-driven. */
	if (d->state == DEV_CONNECTING ? !d->tcp_up : mosquitto_want_write(d->mosq))
		want |= EPOLLOUT;
	if (d->fd == fd && d->events == want)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = want;
	ev.data.u64 = ((uint64_t)d->gen << 32) | (uint64_t)(d - L->devs);
	if (epoll_ctl(L->ep, d->fd == fd ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) != 0) {
		cf_log_error("thing=%s event=epoll_ctl error=\"%s\"", d->name, strerror(errno));
		return;
	}
	d->fd = fd;
	d->events = want;
}

/* Close the client (DISCONNECT first when graceful and up). Counters are the caller's. */
static void
drop(sim_loop *L, sim_dev *d, bool graceful)
{
	if (d->mosq == NULL)
		return;
	if (d->fd >= 0 && mosquitto_socket(d->mosq) == d->fd)
		(void)epoll_ctl(L->ep, EPOLL_CTL_DEL, d->fd, NULL);
	d->fd = -1;
	d->events = 0;
	if (graceful && d->state == DEV_UP)
		(void)mosquitto_disconnect(d->mosq);
	mosquitto_destroy(d->mosq);
	d->mosq = NULL;
	d->npubs = 0;
}

/* ---- agent callbacks ------------------------------------------------------------- */

static void
agent_log(cf_agent_log_level level, const char *line, void *payload)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };

	(void)payload;
	fprintf(stderr, "level=%s sim %s\n", names[level], line);
}

static void
agent_event(cf_agent_event ev, const char *detail, void *payload)
{
	sim_dev *d = payload;
	sim_stats *s = d->loop->stats;

	switch (ev) {
	case CF_AGENT_EVENT_CSR_SENT:
		s->csr_sent++;
		break;
	case CF_AGENT_EVENT_CERT_STAGED:
		s->staged++;
		if (SIM_HAS(d->faults, SIM_FAULT_CRASH_AFTER_STORE) && !d->crash_done)
			d->crash_now = true;
		break;
	case CF_AGENT_EVENT_ROTATED:
		s->rotations++;
		if (SIM_HAS(d->faults, SIM_FAULT_CRASH_BEFORE_ACK) && !d->crash_done)
			d->crash_now = true;
		break;
	case CF_AGENT_EVENT_ROTATION_FAILED:
		sim_tally_add(&s->failed, detail);
		break;
	case CF_AGENT_EVENT_CSR_REJECTED:
		sim_tally_add(&s->rejected, detail);
		break;
	case CF_AGENT_EVENT_FELL_BACK:
		s->fell_back++;
		break;
	default:
		break;
	}
}

int
sim_dev_open(sim_loop *L, sim_dev *d, bool first, cf_agent_err *err)
{
	cf_agent_config cfg;
	int rc;

	cf_agent_config_init(&cfg);
	cfg.client_id = d->name;
	cfg.state_dir = d->dir;
	cfg.trust_store = L->store;
	cfg.topic_prefix = L->opts->topic_prefix;
	cfg.backoff_min_ms = 1000;
	cfg.backoff_max_ms = 15000;
	cfg.log_level = L->opts->log_level;
	cfg.log = agent_log;
	cfg.event = agent_event;
	cfg.event_payload = d;
	broker_host = L->opts->host;
	rc = cf_agent_open(&d->agent, &cfg, err);
	if (rc != CF_AGENT_OK) {
		set_state(L, d, DEV_DEAD);
		return rc;
	}
	if (first)
		snprintf(d->first_cert, sizeof(d->first_cert), "%s",
			 cf_agent_current_cert_id(d->agent));
	set_state(L, d, DEV_CLOSED);
	cf_agent_start(d->agent, L->now);
	d->wake_at = L->now;
	return 0;
}

/* ---- states ----------------------------------------------------------------------- */

static void
lost(sim_loop *L, sim_dev *d)
{
	drop(L, d, false);
	set_state(L, d, DEV_CLOSED);
	L->stats->connections_lost++;
	cf_agent_connection_lost(d->agent, L->now);
	d->wake_at = L->now;
}

static void
connect_failed(sim_loop *L, sim_dev *d, cf_agent_connect_result result)
{
	drop(L, d, false);
	set_state(L, d, DEV_CLOSED);
	L->stats->connect_failures++;
	cf_agent_connect_done(d->agent, d->connect_id, result, L->now);
	sim_dev_pump(L, d);
}

/* The crash faults: the connection and the agent vanish; the disk stays. */
static void
crash(sim_loop *L, sim_dev *d)
{
	d->crash_now = false;
	d->crash_done = true;
	drop(L, d, false);
	cf_agent_free(d->agent);
	d->agent = NULL;
	set_state(L, d, DEV_CRASHED);
	L->stats->crashes++;
	d->deadline = L->now + CRASH_DELAY_MS + (int64_t)(sim_name_hash(d->name) % 1000);
}

/* The offline fault: a clean disconnect (the broker keeps the session), then silence. */
static void
go_offline(sim_loop *L, sim_dev *d)
{
	d->go_offline = false;
	d->offline_done = true;
	drop(L, d, true);
	set_state(L, d, DEV_OFFLINE);
	cf_agent_connection_lost(d->agent, L->now);
	d->deadline = L->now + d->faults.offline_ms;
}

/* ---- libmosquitto callbacks ----------------------------------------------------- */

static void
on_connect(struct mosquitto *mosq, void *obj, int rc)
{
	sim_dev *d = obj;
	sim_loop *L = d->loop;

	(void)mosq;
	if (d->state != DEV_CONNECTING)
		return;
	if (rc != 0) {
		d->refused = true;
		return;
	}
	set_state(L, d, DEV_UP);
	L->stats->connects++;
	d->misc_at = L->now + 1000;
	/* Now, so that the session's queued messages find the agent connected. */
	cf_agent_connect_done(d->agent, d->connect_id, CF_AGENT_CONNECT_OK, L->now);
}

static void
on_publish(struct mosquitto *mosq, void *obj, int mid)
{
	sim_dev *d = obj;
	sim_stats *s = d->loop->stats;
	struct sim_pub p;
	size_t i;

	(void)mosq;
	for (i = 0; i < d->npubs && d->pubs[i].mid != mid; i++)
		;
	if (i == d->npubs || d->agent == NULL)
		return;
	p = d->pubs[i];
	d->pubs[i] = d->pubs[--d->npubs];
	cf_agent_publish_done(d->agent, p.id, 1);
	/* Rotated: the broker took a crt_ack for a certificate we did not start with. */
	if (p.is_ack && !d->rotated &&
	    strcmp(cf_agent_current_cert_id(d->agent), d->first_cert) != 0) {
		d->rotated = true;
		s->rotated++;
		s->last_rotated_ms = d->loop->now;
	}
}

static void
on_subscribe(struct mosquitto *mosq, void *obj, int mid, int qos_count, const int *granted)
{
	sim_dev *d = obj;

	(void)mosq;
	(void)mid;
	(void)qos_count;
	(void)granted;
	d->subacks++;
	/* The agent subscribes to csr_req, crt and csr_rej: all three are in place. */
	if (d->subacks == 3 && SIM_HAS(d->faults, SIM_FAULT_OFFLINE) && !d->offline_done)
		d->go_offline = true;
}

/* Publish what the sim answers itself for a fault (text is freed). */
static void
reply(sim_dev *d, const char *leaf, char *text)
{
	char topic[256];

	if (text == NULL || d->mosq == NULL) {
		free(text);
		return;
	}
	snprintf(topic, sizeof(topic), "%s/%s/%s", d->loop->opts->topic_prefix, d->name, leaf);
	(void)mosquitto_publish(d->mosq, NULL, topic, (int)strlen(text), text, 1, false);
	free(text);
}

static void
on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m)
{
	sim_dev *d = obj;
	sim_stats *s = d->loop->stats;
	const char *leaf = strrchr(m->topic, '/');
	const char *payload = m->payload != NULL ? m->payload : "";
	size_t len = m->payloadlen > 0 ? (size_t)m->payloadlen : 0;
	char *text;

	(void)mosq;
	if (d->crash_now || d->agent == NULL || leaf == NULL)
		return;
	leaf++;
	if (strcmp(leaf, "csr_req") == 0) {
		s->csr_req++;
		if (s->first_csr_req_ms == 0)
			s->first_csr_req_ms = d->loop->now;
		if (SIM_HAS(d->faults, SIM_FAULT_IGNORE_CSR_REQ))
			return;
		if (SIM_HAS(d->faults, SIM_FAULT_BAD_CSR) ||
		    SIM_HAS(d->faults, SIM_FAULT_WEAK_CSR)) {
			s->csr_sent++;
			reply(d, "csr_res",
			      SIM_HAS(d->faults, SIM_FAULT_BAD_CSR)
				      ? sim_fault_bad_csr_res(payload, len)
				      : sim_fault_weak_csr_res(payload, len, d->name));
			return;
		}
		if (SIM_HAS(d->faults, SIM_FAULT_REUSE_KEY)) {
			text = sim_fault_reuse_key_req(payload, len);
			if (text != NULL)
				(void)cf_agent_handle_message(d->agent, m->topic, text,
							      strlen(text), NULL);
			free(text);
			return;
		}
	} else if (strcmp(leaf, "crt") == 0) {
		s->crt++;
		if (SIM_HAS(d->faults, SIM_FAULT_REFUSE_CERT)) {
			sim_tally_add(&s->failed, "REFUSED");
			reply(d, "crt_err", sim_fault_refuse_crt(payload, len));
			return;
		}
	}
	(void)cf_agent_handle_message(d->agent, m->topic, payload, len, NULL);
}

/* ---- host check ------------------------------------------------------------------ */

/*
 * The broker's certificate must name the host we dialled: as an IP address
 * SAN, or as a DNS name (SAN, or CN without DNS SANs). Either form passes,
 * so that a certificate made for the agent's own transport works here too.
 */
static int
verify_host(int ok, X509_STORE_CTX *ctx)
{
	X509 *cert;

	if (ok != 1 || X509_STORE_CTX_get_error_depth(ctx) != 0 || broker_host == NULL)
		return ok;
	cert = X509_STORE_CTX_get_current_cert(ctx);
	if (X509_check_ip_asc(cert, broker_host, 0) == 1 ||
	    X509_check_host(cert, broker_host, 0, 0, NULL) == 1)
		return 1;
	X509_STORE_CTX_set_error(ctx, X509_V_ERR_HOSTNAME_MISMATCH);
	return 0;
}

/* ---- driving ---------------------------------------------------------------------- */

static bool
ends_with(const char *s, const char *tail)
{
	size_t a = strlen(s), b = strlen(tail);

	return a >= b && strcmp(s + a - b, tail) == 0;
}

static void
track(sim_dev *d, int mid, unsigned long id, bool is_ack)
{
	if (d->npubs == SIM_DEV_PUBS) {
		/* Cannot happen with the agent's few messages; QoS 1 delivers it anyway. */
		cf_agent_publish_done(d->agent, id, 1);
		return;
	}
	d->pubs[d->npubs].mid = mid;
	d->pubs[d->npubs].id = id;
	d->pubs[d->npubs].is_ack = is_ack;
	d->npubs++;
}

void
sim_dev_pump(sim_loop *L, sim_dev *d)
{
	cf_agent_action act;
	int64_t wait;
	int i, mid, rc;

	if (d->state != DEV_CLOSED && d->state != DEV_UP)
		return;
	for (i = 0; i < PUMP_MAX; i++) {
		(void)cf_agent_tick(d->agent, L->now);
		if (cf_agent_next_action(&act, d->agent) != 1)
			break;
		switch (act.type) {
		case CF_AGENT_ACTION_CONNECT:
			drop(L, d, true);
			set_state(L, d, DEV_QUEUED);
			d->connect_id = act.id;
			d->ident = act.identity;
			sim_loop_queue(L, d);
			return;
		case CF_AGENT_ACTION_SUBSCRIBE:
			rc = d->state == DEV_UP ? mosquitto_subscribe(d->mosq, NULL, act.topic, 1)
						: MOSQ_ERR_NO_CONN;
			if (rc != MOSQ_ERR_SUCCESS) {
				lost(L, d);
				return;
			}
			break;
		case CF_AGENT_ACTION_PUBLISH:
			rc = d->state == DEV_UP ? mosquitto_publish(d->mosq, &mid, act.topic,
								    (int)act.payload_len,
								    act.payload, 1, false)
						: MOSQ_ERR_NO_CONN;
			if (rc != MOSQ_ERR_SUCCESS) {
				cf_agent_publish_done(d->agent, act.id, 0);
				lost(L, d);
				return;
			}
			track(d, mid, act.id, ends_with(act.topic, "/crt_ack"));
			break;
		default:
			break;
		}
	}
	wait = cf_agent_tick(d->agent, L->now);
	d->wake_at = L->now + (wait > 0 ? wait : 10);
	if (d->state == DEV_UP && mosquitto_socket(d->mosq) < 0) {
		lost(L, d);
		return;
	}
	watch(L, d);
}

void
sim_dev_connect_start(sim_loop *L, sim_dev *d)
{
	const sim_run_opts *o = L->opts;
	SSL_CTX *ctx = d->ident.ssl_ctx;

	set_state(L, d, DEV_CONNECTING);
	d->tcp_up = false;
	d->refused = false;
	d->subacks = 0;
	d->npubs = 0;
	d->deadline = L->now + CONNECT_TIMEOUT_MS;
	if (ctx == NULL) {
		connect_failed(L, d, CF_AGENT_CONNECT_REFUSED);
		return;
	}
	d->gen++;
	sim_socketpair_block(true);
	d->mosq = mosquitto_new(d->ident.client_id, false, d);
	sim_socketpair_block(false);
	if (d->mosq == NULL) {
		connect_failed(L, d, CF_AGENT_CONNECT_UNREACHABLE);
		return;
	}
	/* The agent's context: trust store and identity; we add the host check. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_host);
	mosquitto_int_option(d->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
	mosquitto_int_option(d->mosq, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_int_option(d->mosq, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0);
	mosquitto_void_option(d->mosq, MOSQ_OPT_SSL_CTX, ctx);
	mosquitto_connect_callback_set(d->mosq, on_connect);
	mosquitto_publish_callback_set(d->mosq, on_publish);
	mosquitto_subscribe_callback_set(d->mosq, on_subscribe);
	mosquitto_message_callback_set(d->mosq, on_message);
	if (mosquitto_connect_async(d->mosq, o->host, o->port, o->keepalive) != MOSQ_ERR_SUCCESS) {
		connect_failed(L, d, CF_AGENT_CONNECT_UNREACHABLE);
		return;
	}
	watch(L, d);
}

/* After a libmosquitto call on d returned rc: take what its callbacks asked for. */
static void
after(sim_loop *L, sim_dev *d, int rc, uint32_t events)
{
	bool gone = d->mosq == NULL || mosquitto_socket(d->mosq) < 0;

	if (d->crash_now) {
		crash(L, d);
		return;
	}
	if (d->state == DEV_CONNECTING) {
		if (d->refused)
			connect_failed(L, d, CF_AGENT_CONNECT_REFUSED);
		else if (rc != MOSQ_ERR_SUCCESS || gone || (events & (EPOLLERR | EPOLLHUP)))
			connect_failed(L, d,
				       d->tcp_up ? CF_AGENT_CONNECT_REFUSED
						 : CF_AGENT_CONNECT_UNREACHABLE);
		else
			watch(L, d);
		return;
	}
	if (d->state != DEV_UP)
		return;
	if (rc != MOSQ_ERR_SUCCESS || gone) {
		lost(L, d);
		return;
	}
	if (d->go_offline) {
		go_offline(L, d);
		return;
	}
	sim_dev_pump(L, d);
}

/*
 * Read, then write what is waiting (the CONNECT after the handshake, fault
 * replies). A TLS record may hold more than one MQTT packet: what OpenSSL
 * already decrypted is not readable on the socket, so epoll would not wake
 * us for it; read on while SSL_pending() says there is some.
 */
static int
read_write(sim_dev *d, bool readable)
{
	int rc = MOSQ_ERR_SUCCESS;
	int i;

	if (readable)
		rc = mosquitto_loop_read(d->mosq, 1);
	for (i = 0; readable && rc == MOSQ_ERR_SUCCESS && !d->crash_now && i < 16; i++) {
		SSL *ssl = mosquitto_ssl_get(d->mosq);

		if (ssl == NULL || SSL_pending(ssl) <= 0)
			break;
		rc = mosquitto_loop_read(d->mosq, 1);
	}
	if (rc == MOSQ_ERR_SUCCESS && d->mosq != NULL && !d->crash_now &&
	    mosquitto_socket(d->mosq) >= 0 && mosquitto_want_write(d->mosq))
		rc = mosquitto_loop_write(d->mosq, 1);
	return rc;
}

void
sim_dev_on_event(sim_loop *L, sim_dev *d, uint32_t events)
{
	int rc;

	if (d->mosq == NULL || (d->state != DEV_CONNECTING && d->state != DEV_UP))
		return; /* a stale event of a client closed in this round */
	if (d->state == DEV_CONNECTING) {
		if ((events & EPOLLOUT) && !(events & EPOLLERR))
			d->tcp_up = true;
		if (!d->tcp_up && (events & (EPOLLERR | EPOLLHUP))) {
			connect_failed(L, d, CF_AGENT_CONNECT_UNREACHABLE);
			return;
		}
		rc = read_write(d, true);
		after(L, d, rc, events);
		return;
	}
	rc = read_write(d, (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0);
	after(L, d, rc, 0);
}

void
sim_dev_timer(sim_loop *L, sim_dev *d)
{
	cf_agent_err e;
	int rc;

	switch (d->state) {
	case DEV_CLOSED:
		if (L->now >= d->wake_at)
			sim_dev_pump(L, d);
		break;
	case DEV_UP:
		if (L->now >= d->misc_at) {
			d->misc_at = L->now + 1000;
			rc = mosquitto_loop_misc(d->mosq);
			if (rc == MOSQ_ERR_SUCCESS)
				rc = read_write(d, false);
			after(L, d, rc, 0);
		} else if (L->now >= d->wake_at) {
			sim_dev_pump(L, d);
		}
		break;
	case DEV_CONNECTING:
		if (L->now >= d->deadline)
			connect_failed(L, d, CF_AGENT_CONNECT_UNREACHABLE);
		else if (d->tcp_up)
			after(L, d, read_write(d, true), 0); /* a write the handshake held back */
		break;
	case DEV_OFFLINE:
		if (L->now >= d->deadline) {
			set_state(L, d, DEV_CLOSED);
			sim_dev_pump(L, d);
		}
		break;
	case DEV_CRASHED:
		if (L->now < d->deadline)
			break;
		memset(&e, 0, sizeof(e));
		if (sim_dev_open(L, d, false, &e) != CF_AGENT_OK)
			cf_log_error("thing=%s event=reopen error=\"%s\"", d->name, e.msg);
		else
			sim_dev_pump(L, d);
		break;
	default:
		break;
	}
}

void
sim_dev_close(sim_loop *L, sim_dev *d)
{
	drop(L, d, true);
	cf_agent_free(d->agent);
	d->agent = NULL;
}
