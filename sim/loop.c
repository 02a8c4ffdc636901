/*
 * The event loop: every device of the run in one thread and one epoll set.
 *
 * How it works
 * ------------
 * Each round: a timer scan over all devices every SCAN_MS (agent timers,
 * keepalive, connect deadlines, the end of an offline period or of a
 * crash), then new connections from the queue of devices holding a
 * CONNECT (at most max_connecting handshakes in flight, and connect_rate
 * new ones per second, a token bucket), then epoll_wait() and the events.
 * The scan is O(devices) per SCAN_MS: for 10,000 devices, a few hundred
 * thousand cheap checks a second, simpler than a timer heap and not
 * measurable next to the TLS work.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "fleet.h"

#define SCAN_MS     50
#define EVENTS_MAX  512
/* Time a round may spend on established devices before the next epoll_wait(). */
#define ROUND_BUDGET_MS 20
#define PROGRESS_MS 1000

/* ---- socketpair() for libmosquitto -------------------------------------------- */

static bool socketpair_blocked;

void
sim_socketpair_block(bool block)
{
	socketpair_blocked = block;
}

/*
 * Our definition of socketpair() is the one libmosquitto.so binds to (the
 * executable comes first in the dynamic symbol lookup). See fleet.h; any
 * other caller gets the real system call.
 */
int socketpair(int domain, int type, int protocol, int sv[2]);

int
socketpair(int domain, int type, int protocol, int sv[2])
{
	if (socketpair_blocked) {
		errno = EMFILE;
		return -1;
	}
	return (int)syscall(SYS_socketpair, domain, type, protocol, sv);
}

/* ---- helpers ----------------------------------------------------------------------- */

void
sim_names_free(char **names, size_t n)
{
	size_t i;

	if (names == NULL)
		return;
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool
is_dir(const char *dir, const char *name, const char *sub)
{
	char *a = cf_path_join(dir, name);
	char *b = a != NULL ? cf_path_join(a, sub) : NULL;
	struct stat st;
	bool yes = b != NULL && stat(b, &st) == 0 && S_ISDIR(st.st_mode);

	free(a);
	free(b);
	return yes;
}

int
sim_state_names(char ***out, size_t *n_out, const char *state_dir, cf_err *err)
{
	DIR *dir = opendir(state_dir);
	struct dirent *de;
	char **names = NULL, **grown;
	size_t n = 0, cap = 0;
	int rc = CF_OK;

	*out = NULL;
	*n_out = 0;
	if (dir == NULL)
		return cf_err_set(err, errno == ENOENT ? CF_ENOTFOUND : CF_EIO, NULL,
				  "state dir %s: %s", state_dir, strerror(errno));
	while ((de = readdir(dir)) != NULL) {
		if (!cf_name_valid(de->d_name) || (!is_dir(state_dir, de->d_name, "current") &&
						   !is_dir(state_dir, de->d_name, "previous")))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			grown = realloc(names, cap * sizeof(*names));
			if (grown == NULL) {
				rc = cf_err_set(err, CF_ENOMEM, NULL, "device names");
				break;
			}
			names = grown;
		}
		names[n] = cf_strdup(de->d_name);
		if (names[n] == NULL) {
			rc = cf_err_set(err, CF_ENOMEM, NULL, "device names");
			break;
		}
		n++;
	}
	closedir(dir);
	if (rc != CF_OK) {
		sim_names_free(names, n);
		return rc;
	}
	if (n > 0)
		qsort(names, n, sizeof(*names), str_cmp);
	*out = names;
	*n_out = n;
	return CF_OK;
}

void
sim_loop_queue(sim_loop *L, sim_dev *d)
{
	L->queue[(L->qhead + L->qlen) % L->n] = (size_t)(d - L->devs);
	L->qlen++;
}

/* Start queued connections within the concurrency cap and the rate. */
static void
dispatch(sim_loop *L)
{
	double rate = (double)L->opts->connect_rate;

	L->tokens += rate * (double)(L->now - L->tokens_at) / 1000.0;
	L->tokens_at = L->now;
	/* A burst of at most a tenth of a second's worth keeps starts spread. */
	if (L->tokens > fmax(1.0, rate / 10.0))
		L->tokens = fmax(1.0, rate / 10.0);
	while (L->qlen > 0 && L->connecting < L->opts->max_connecting && L->tokens >= 1.0) {
		sim_dev *d = &L->devs[L->queue[L->qhead]];

		L->qhead = (L->qhead + 1) % L->n;
		L->qlen--;
		L->tokens -= 1.0;
		if (d->state == DEV_QUEUED)
			sim_dev_connect_start(L, d);
	}
}

/*
 * The timer scan. A device without a connection that is due takes its
 * CONNECT action only while the queue is short: taking it builds the
 * identity's SSL_CTX (about a millisecond each in OpenSSL 3.0), which for
 * 10,000 devices at once would stall the loop for many seconds before the
 * first handshake. The next scan starts at the first device left waiting,
 * so that every device gets its turn.
 */
static void
scan(sim_loop *L)
{
	size_t cap = 2 * (size_t)L->opts->max_connecting;
	size_t k, i, first_left = SIZE_MAX;

	for (k = 0; k < L->n; k++) {
		sim_dev *d = &L->devs[(L->cursor + k) % L->n];

		if (d->state == DEV_CLOSED && L->now >= d->wake_at && L->qlen >= cap) {
			if (first_left == SIZE_MAX)
				first_left = (L->cursor + k) % L->n;
			continue;
		}
		sim_dev_timer(L, d);
	}
	i = first_left != SIZE_MAX ? first_left : L->cursor;
	L->cursor = i;
}

/* Descriptors: one socket per device, plus the files the agents open now and then. */
static int
raise_nofile(size_t devices, cf_err *err)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)devices + 256;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return cf_err_set(err, CF_EIO, NULL, "getrlimit: %s", strerror(errno));
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < need)
		return cf_err_set(err, CF_EINVAL, NULL,
				  "%zu devices need about %lu open files; the limit is %lu "
				  "(raise it with ulimit -n, or run fewer --devices)",
				  devices, (unsigned long)need, (unsigned long)rl.rlim_cur);
	return CF_OK;
}

/* ---- setup and teardown ------------------------------------------------------------ */

/* names_out gets every device name of the state dir (n_out of them); the run uses the first. */
static int
setup(sim_loop *L, char ***names_out, size_t *n_out, cf_err *err)
{
	const sim_run_opts *o = L->opts;
	sim_fault_set *sets = NULL;
	char **names = NULL;
	size_t n = 0, total = 0, i;
	int rc, k;

	rc = sim_state_names(&names, &total, o->state_dir, err);
	if (rc != CF_OK)
		goto out;
	n = total;
	if (n == 0 || (o->devices > 0 && (size_t)o->devices > n)) {
		rc = cf_err_set(err, CF_ENOTFOUND, NULL, "%s holds %zu devices%s", o->state_dir, n,
				n > 0 ? ", fewer than --devices" : " ('certfleet-sim provision')");
		goto out;
	}
	if (o->devices > 0)
		n = (size_t)o->devices;
	if (o->until_rotated > 0 && (size_t)o->until_rotated > n) {
		rc = cf_err_set(err, CF_EINVAL, NULL,
				"--until-rotated %ld is more than the %zu "
				"devices",
				o->until_rotated, n);
		goto out;
	}
	rc = raise_nofile(n, err);
	if (rc != CF_OK)
		goto out;
	L->store = X509_STORE_new();
	if (L->store == NULL || X509_STORE_load_file(L->store, o->ca_file) != 1) {
		rc = cf_err_set_ossl(err, CF_EINVAL, NULL, "cannot load the CA bundle %s",
				     o->ca_file);
		goto out;
	}
	sets = calloc(n, sizeof(*sets));
	L->devs = calloc(n, sizeof(*L->devs));
	L->queue = calloc(n, sizeof(*L->queue));
	if (sets == NULL || L->devs == NULL || L->queue == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "%zu devices", n);
		goto out;
	}
	rc = sim_faults_assign(sets, (const char *const *)names, n, o->faults, o->nfaults, err);
	if (rc != CF_OK)
		goto out;
	L->ep = epoll_create1(EPOLL_CLOEXEC);
	if (L->ep < 0) {
		rc = cf_err_set(err, CF_EIO, NULL, "epoll_create1: %s", strerror(errno));
		goto out;
	}
	L->n = n;
	L->stats->devices = (long)n;
	for (i = 0; i < n; i++) {
		sim_dev *d = &L->devs[i];

		d->loop = L;
		d->name = names[i];
		d->fd = -1;
		d->faults = sets[i];
		d->dir = cf_path_join(o->state_dir, names[i]);
		if (d->dir == NULL) {
			rc = cf_err_set(err, CF_ENOMEM, NULL, "paths");
			goto out;
		}
		for (k = 0; k < SIM_FAULT_COUNT; k++)
			if (SIM_HAS(d->faults, k))
				L->stats->fault_devices[k]++;
	}
out:
	free(sets);
	*names_out = names;
	*n_out = total;
	return rc;
}

static void
teardown(sim_loop *L, char **names, size_t n_names)
{
	size_t i;

	for (i = 0; L->devs != NULL && i < L->n; i++) {
		sim_dev_close(L, &L->devs[i]);
		free(L->devs[i].dir);
	}
	free(L->devs);
	free(L->queue);
	if (L->ep >= 0)
		close(L->ep);
	X509_STORE_free(L->store);
	/* names[i] were lent to the devices; the names past the run are freed here too. */
	sim_names_free(names, n_names);
}

/* ---- the loop ------------------------------------------------------------------------ */

static const char *
finished(const sim_loop *L, int64_t start)
{
	const sim_run_opts *o = L->opts;

	if (o->stop != NULL && *o->stop)
		return "signal";
	if (o->until_rotated > 0 && L->stats->rotated >= o->until_rotated)
		return "until_rotated";
	if (o->duration_ms > 0 && L->now - start >= o->duration_ms)
		return "duration";
	if (o->timeout_ms > 0 && L->now - start >= o->timeout_ms)
		return "timeout";
	return NULL;
}

static void
open_all(sim_loop *L)
{
	cf_agent_err e;
	size_t i;

	for (i = 0; i < L->n; i++) {
		memset(&e, 0, sizeof(e));
		L->now = cf_time_mono_ms();
		if (sim_dev_open(L, &L->devs[i], true, &e) != CF_AGENT_OK)
			cf_log_error("thing=%s event=open error=\"%s\"", L->devs[i].name, e.msg);
		if (L->opts->stop != NULL && *L->opts->stop)
			return;
	}
}

/*
 * Handshakes first, then the rest within ROUND_BUDGET_MS: a burst of
 * certificates to check (a mass rotation delivers one to every device at
 * once, ~1 ms of work each) must not starve the connects in flight, which
 * need a few quick turns each. What is left is level-triggered and comes
 * back from the next epoll_wait().
 */
static void
handle_events(sim_loop *L, const struct epoll_event *evs, size_t nev)
{
	int64_t round_end = cf_time_mono_ms() + ROUND_BUDGET_MS;
	size_t i;
	int pass;

	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < nev; i++) {
			size_t idx = (size_t)(evs[i].data.u64 & 0xffffffffu);
			uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
			sim_dev *d = idx < L->n ? &L->devs[idx] : NULL;

			/* An event of a client closed earlier in this round is stale. */
			if (d == NULL || d->gen != gen || (d->state == DEV_CONNECTING) != (pass == 0))
				continue;
			if (pass == 1 && cf_time_mono_ms() >= round_end)
				return;
			sim_dev_on_event(L, d, evs[i].events);
		}
	}
}

int
sim_run(sim_stats *stats, const sim_run_opts *o, cf_err *err)
{
	struct epoll_event evs[EVENTS_MAX];
	sim_loop L;
	char **names = NULL;
	size_t n_names = 0;
	int64_t start, next_scan, next_progress;
	const char *why = NULL;
	bool tty = isatty(STDERR_FILENO) == 1;
	int rc, nev, wait;

	memset(&L, 0, sizeof(L));
	memset(stats, 0, sizeof(*stats));
	L.opts = o;
	L.stats = stats;
	L.ep = -1;
	mosquitto_lib_init();
	rc = setup(&L, &names, &n_names, err);
	if (rc != CF_OK) {
		teardown(&L, names, n_names);
		mosquitto_lib_cleanup();
		return SIM_EXIT_FAIL;
	}
	start = cf_time_mono_ms();
	stats->start_ms = start;
	open_all(&L);
	if (o->progress)
		fprintf(stderr, "opened %zu devices in %.1f s\n", L.n,
			(double)(cf_time_mono_ms() - start) / 1000.0);
	L.now = cf_time_mono_ms();
	L.tokens_at = L.now;
	next_scan = L.now;
	next_progress = L.now + PROGRESS_MS;
	while (why == NULL) {
		L.now = cf_time_mono_ms();
		why = finished(&L, start);
		if (why != NULL)
			break;
		if (o->progress && L.now >= next_progress) {
			sim_report_progress(stderr, stats, L.now);
			fputc(tty ? '\r' : '\n', stderr);
			next_progress += PROGRESS_MS;
			if (next_progress < L.now)
				next_progress = L.now + PROGRESS_MS;
		}
		if (L.now >= next_scan) {
			scan(&L);
			next_scan = L.now + SCAN_MS;
		}
		dispatch(&L);
		wait = (int)(next_scan - L.now);
		if (L.qlen > 0 && L.connecting < o->max_connecting && wait > 5)
			wait = 5; /* waiting for connect tokens */
		if (wait < 0)
			wait = 0;
		nev = epoll_wait(L.ep, evs, EVENTS_MAX, wait);
		if (nev < 0 && errno != EINTR) {
			cf_log_error("event=epoll_wait error=\"%s\"", strerror(errno));
			break;
		}
		L.now = cf_time_mono_ms();
		if (nev > 0)
			handle_events(&L, evs, (size_t)nev);
		ERR_clear_error();
	}
	if (why == NULL)
		why = "error";
	stats->end_ms = cf_time_mono_ms();
	stats->outcome = why;
	if (o->progress) {
		sim_report_progress(stderr, stats, stats->end_ms);
		fputc('\n', stderr);
	}
	teardown(&L, names, n_names);
	mosquitto_lib_cleanup();
	if (strcmp(why, "until_rotated") == 0 || strcmp(why, "duration") == 0)
		return SIM_EXIT_OK;
	if (strcmp(why, "signal") == 0)
		return o->until_rotated > 0 || o->duration_ms > 0 ? SIM_EXIT_INTERRUPTED
								  : SIM_EXIT_OK;
	return SIM_EXIT_FAIL;
}
