/* Test support: a real Mosquitto broker, long-running processes, bounded waits. */
#define _GNU_SOURCE /* memmem, prctl */

#include "support/broker.h"
#include "support/fleet.h"
#include "support/run.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Attempts at a fresh port when another process takes ours first. */
#define PORT_TRIES 5
/* Attempts at the same port on restart (a lingering socket), 250 ms apart. */
#define RESTART_TRIES 20
/* Largest file cf_test_file_count() reads. */
#define FILE_MAX (256 * 1024 * 1024)

struct cf_test_bg {
	pid_t pid;
	bool reaped;
	int status; /* valid once reaped */
	char name[64];
};

struct cf_test_broker {
	char *dir;
	char *conf;      /* DIR/mosquitto.conf */
	char *ca_file;   /* DIR/broker-ca.pem */
	char *log_file;  /* DIR/mosquitto.log */
	char *out_file;  /* DIR/mosquitto.out: its stdout and stderr */
	char *client_ca; /* the bundle client certificates must chain to */
	char *extra;     /* appended to the conf, or NULL */
	int port;
	cf_test_bg *proc;
};

int64_t
cf_test_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(int64_t ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int
status_of(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	if (WIFSIGNALED(wstatus))
		return 128 + WTERMSIG(wstatus);
	return -1;
}

/* ---- long-running processes -------------------------------------------------- */

/* In the child, between fork and exec: only async-signal-safe calls. */
static void
child_exec(const char *const *argv, const char *out_path, const char *err_path, pid_t parent,
	   int report_fd)
{
	sigset_t none;
	int fd, e;

	setpgid(0, 0);
	/* Die with the test: a crashed test must not leave a broker running. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	fd = open("/dev/null", O_RDONLY);
	if (fd < 0 || dup2(fd, 0) < 0)
		goto fail;
	close(fd);
	fd = open(out_path != NULL ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd < 0 || dup2(fd, 1) < 0)
		goto fail;
	close(fd);
	if (err_path != NULL && out_path != NULL && strcmp(err_path, out_path) == 0) {
		if (dup2(1, 2) < 0)
			goto fail;
	} else {
		fd = open(err_path != NULL ? err_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND,
			  0644);
		if (fd < 0 || dup2(fd, 2) < 0)
			goto fail;
		close(fd);
	}
	/* execvp takes char *const[]; it does not write through it. */
	execvp(argv[0], (char *const *)(uintptr_t)argv);
fail:
	e = errno;
	if (write(report_fd, &e, sizeof(e)) < 0)
		_exit(127);
	_exit(127);
}

int
cf_test_bg_start(cf_test_bg **out, const char *const *argv, const char *out_path,
		 const char *err_path)
{
	cf_test_bg *p;
	int report[2], e = 0, wstatus;
	pid_t parent = getpid(), pid;
	ssize_t n;

	*out = NULL;
	if (argv == NULL || argv[0] == NULL)
		return -1;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -1;
	snprintf(p->name, sizeof(p->name), "%s", argv[0]);
	/* A close-on-exec pipe tells whether the exec worked. */
	if (pipe2(report, O_CLOEXEC) != 0) {
		fprintf(stderr, "broker: pipe: %s\n", strerror(errno));
		free(p);
		return -1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "broker: fork: %s\n", strerror(errno));
		close(report[0]);
		close(report[1]);
		free(p);
		return -1;
	}
	if (pid == 0) {
		close(report[0]);
		child_exec(argv, out_path, err_path, parent, report[1]);
	}
	setpgid(pid, pid); /* also in the parent: no window where a kill(-pid) misses */
	close(report[1]);
	do {
		n = read(report[0], &e, sizeof(e));
	} while (n < 0 && errno == EINTR);
	close(report[0]);
	p->pid = pid;
	if (n > 0) {
		fprintf(stderr, "broker: cannot start %s: %s\n", argv[0], strerror(e));
		while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
			;
		free(p);
		return -1;
	}
	*out = p;
	return 0;
}

pid_t
cf_test_bg_pid(const cf_test_bg *p)
{
	return p->pid;
}

/*
 * Reap p if it has exited. Its group is killed first, while the exited
 * leader still holds the group id, so that no straggler outlives it and
 * the kill cannot reach a stranger that reused the id.
 */
static bool
try_reap(cf_test_bg *p)
{
	siginfo_t si;
	int wstatus;

	if (p->reaped)
		return true;
	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0) {
		if (errno == EINTR)
			return false;
		/* Not our child any more (reaped elsewhere): treat as gone. */
		p->reaped = true;
		p->status = -1;
		return true;
	}
	if (si.si_pid != p->pid)
		return false;
	kill(-p->pid, SIGKILL);
	while (waitpid(p->pid, &wstatus, 0) < 0 && errno == EINTR)
		;
	p->status = status_of(wstatus);
	p->reaped = true;
	return true;
}

bool
cf_test_bg_running(cf_test_bg *p)
{
	return !try_reap(p);
}

int
cf_test_bg_signal(cf_test_bg *p, int sig)
{
	if (try_reap(p))
		return -1;
	return kill(p->pid, sig) == 0 ? 0 : -1;
}

int
cf_test_bg_wait(cf_test_bg *p, int timeout_ms)
{
	int64_t deadline = cf_test_now_ms() + timeout_ms;

	for (;;) {
		if (try_reap(p))
			return p->status;
		if (cf_test_now_ms() >= deadline)
			return -1;
		sleep_ms(10);
	}
}

int
cf_test_bg_stop(cf_test_bg *p, int timeout_ms)
{
	int wstatus;

	if (try_reap(p))
		return p->status;
	kill(p->pid, SIGTERM);
	if (cf_test_bg_wait(p, timeout_ms > 0 ? timeout_ms : CF_TEST_STOP_MS) >= 0 || p->reaped)
		return p->status;
	fprintf(stderr, "broker: %s (pid %ld) ignored SIGTERM; killed\n", p->name, (long)p->pid);
	kill(-p->pid, SIGKILL);
	while (waitpid(p->pid, &wstatus, 0) < 0 && errno == EINTR)
		;
	p->status = status_of(wstatus);
	p->reaped = true;
	return p->status;
}

void
cf_test_bg_free(cf_test_bg *p)
{
	int wstatus;

	if (p == NULL)
		return;
	if (!try_reap(p)) {
		kill(-p->pid, SIGKILL);
		while (waitpid(p->pid, &wstatus, 0) < 0 && errno == EINTR)
			;
	}
	free(p);
}

/* ---- bounded waits ----------------------------------------------------------- */

int
cf_test_wait_until(cf_test_cond cond, void *payload, int interval_ms, int timeout_ms)
{
	int64_t deadline = cf_test_now_ms() + timeout_ms, left;

	if (interval_ms <= 0)
		interval_ms = 50;
	for (;;) {
		if (cond(payload))
			return 0;
		left = deadline - cf_test_now_ms();
		if (left <= 0)
			return -1;
		sleep_ms(left < interval_ms ? left : interval_ms);
	}
}

size_t
cf_test_file_count(const char *path, const char *needle)
{
	char *text = NULL;
	const char *p, *hit;
	size_t len = 0, nlen = strlen(needle), n = 0;

	if (nlen == 0 || cf_test_file_read(&text, &len, path, FILE_MAX) != 0)
		return 0;
	/* memmem: a log may hold a NUL byte (a crashed writer), strstr would stop there. */
	p = text;
	while ((size_t)(p - text) < len) {
		hit = memmem(p, len - (size_t)(p - text), needle, nlen);
		if (hit == NULL)
			break;
		n++;
		p = hit + nlen;
	}
	free(text);
	return n;
}

struct file_wait {
	const char *path, *needle;
	size_t n;
};

static bool
file_has(void *payload)
{
	struct file_wait *w = payload;

	return cf_test_file_count(w->path, w->needle) >= w->n;
}

int
cf_test_file_wait(const char *path, const char *needle, size_t n, int timeout_ms)
{
	struct file_wait w = { path, needle, n };

	return cf_test_wait_until(file_has, &w, 20, timeout_ms);
}

/* ---- the broker -------------------------------------------------------------- */

/* openssl ARGS...: 0 when it exits 0; else its output on stderr and -1. */
static CF_TEST_SENTINEL int
ossl(const char *arg0, ...)
{
	const char *argv[64];
	cf_test_result r = CF_TEST_RESULT_INIT;
	size_t n = 0, i;
	va_list ap;
	int rc;

	argv[n++] = "openssl";
	argv[n++] = arg0;
	va_start(ap, arg0);
	while (n < 63) {
		argv[n] = va_arg(ap, const char *);
		if (argv[n] == NULL)
			break;
		n++;
	}
	va_end(ap);
	argv[n] = NULL;
	rc = cf_test_run(&r, argv, 30) == 0 && r.status == 0 ? 0 : -1;
	if (rc != 0) {
		fprintf(stderr, "broker: command failed (exit %d):", r.status);
		for (i = 0; argv[i] != NULL; i++)
			fprintf(stderr, " %s", argv[i]);
		fprintf(stderr, "\n%s%s\n", r.out != NULL ? r.out : "", r.err != NULL ? r.err : "");
	}
	cf_test_result_clear(&r);
	return rc;
}

/* The broker CA and the server certificate, all EC P-256, valid 2 days. */
static int
make_certs(cf_test_broker *b)
{
	static const char cnf[] = "[req]\n"
				  "distinguished_name = dn\n"
				  "prompt = no\n"
				  "x509_extensions = v3_ca\n"
				  "[dn]\n"
				  "CN = certfleet test broker CA\n"
				  "[v3_ca]\n"
				  "basicConstraints = critical,CA:TRUE\n"
				  "keyUsage = critical,keyCertSign,cRLSign\n"
				  "subjectKeyIdentifier = hash\n"
				  "[server]\n"
				  "basicConstraints = critical,CA:FALSE\n"
				  "keyUsage = critical,digitalSignature\n"
				  "extendedKeyUsage = serverAuth\n"
				  "subjectAltName = IP:127.0.0.1,DNS:localhost\n"
				  "subjectKeyIdentifier = hash\n"
				  "authorityKeyIdentifier = keyid\n";
	char *cnf_path = cf_test_printf("%s/openssl.cnf", b->dir);
	char *ca_key = cf_test_printf("%s/broker-ca.key", b->dir);
	char *key = cf_test_printf("%s/server.key", b->dir);
	char *csr = cf_test_printf("%s/server.csr", b->dir);
	char *crt = cf_test_printf("%s/server.pem", b->dir);
	int rc = -1;

	if (cnf_path == NULL || ca_key == NULL || key == NULL || csr == NULL || crt == NULL)
		goto out;
	if (cf_test_file_write(cnf_path, cnf, strlen(cnf), 0644) != 0)
		goto out;
	if (ossl("req", "-x509", "-config", cnf_path, "-newkey", "ec", "-pkeyopt",
		 "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key, "-out", b->ca_file,
		 "-days", "2", NULL) != 0)
		goto out;
	if (ossl("req", "-new", "-config", cnf_path, "-newkey", "ec", "-pkeyopt",
		 "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr, "-subj",
		 "/CN=localhost", NULL) != 0)
		goto out;
	if (ossl("x509", "-req", "-in", csr, "-CA", b->ca_file, "-CAkey", ca_key, "-set_serial",
		 "1", "-days", "2", "-extfile", cnf_path, "-extensions", "server", "-out", crt,
		 NULL) != 0)
		goto out;
	rc = 0;
out:
	free(cnf_path);
	free(ca_key);
	free(key);
	free(csr);
	free(crt);
	return rc;
}

/* A port of 127.0.0.1 that was free a moment ago (bind port 0, read it, close). */
static int
free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd, port = -1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/* Whether a TCP connection to 127.0.0.1:port is accepted. */
static bool
tcp_accepts(int port)
{
	struct sockaddr_in sa;
	int fd;
	bool ok;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

static int
write_conf(cf_test_broker *b)
{
	FILE *fp = fopen(b->conf, "w");
	int rc = 0;

	if (fp == NULL) {
		fprintf(stderr, "broker: %s: %s\n", b->conf, strerror(errno));
		return -1;
	}
	fprintf(fp,
		"# Written by tests/support/broker.c for one test.\n"
		"listener %d 127.0.0.1\n"
		"cafile %s\n"
		"certfile %s/server.pem\n"
		"keyfile %s/server.key\n"
		"require_certificate true\n"
		"use_identity_as_username false\n"
		"set_tcp_nodelay true\n"
		"allow_anonymous true\n"
		"persistence true\n"
		"persistence_location %s/\n"
		"log_dest file %s\n"
		"log_type all\n"
		"connection_messages true\n"
		"log_timestamp true\n"
		"log_timestamp_format %%H:%%M:%%S\n",
		b->port, b->client_ca, b->dir, b->dir, b->dir, b->log_file);
	/* As root, Mosquitto would switch to the mosquitto user, who cannot read the temp dir. */
	if (geteuid() == 0)
		fprintf(fp, "user root\n");
	if (b->extra != NULL)
		fprintf(fp, "%s\n", b->extra);
	if (fclose(fp) != 0)
		rc = -1;
	return rc;
}

/* Its output and log, when it did not come up. */
static void
show_broker_output(const cf_test_broker *b)
{
	char *text = NULL;

	if (cf_test_file_read(&text, NULL, b->out_file, 1024 * 1024) == 0) {
		fprintf(stderr, "broker: %s:\n%s\n", b->out_file, text);
		free(text);
	}
	if (cf_test_file_read(&text, NULL, b->log_file, 4 * 1024 * 1024) == 0) {
		fprintf(stderr, "broker: %s:\n%s\n", b->log_file, text);
		free(text);
	}
}

/*
 * Start Mosquitto on b->port and wait until it accepts TCP. Returns 0, 1
 * when the port was taken (try another), -1 on any other failure.
 */
static int
launch(cf_test_broker *b)
{
	const char *plain[] = { "mosquitto", "-c", b->conf, NULL };
	const char *preload = getenv("CF_TEST_BROKER_PRELOAD");
	char *env = NULL;
	const char *with_env[] = { "env", NULL, NULL, "mosquitto", "-c", b->conf, NULL };
	char *lsan = NULL, *supp = NULL;
	const char *const *argv = plain;
	size_t busy_before;
	int rc;
	int64_t deadline;

	if (write_conf(b) != 0)
		return -1;
	busy_before = cf_test_file_count(b->log_file, "Address already in use") +
		      cf_test_file_count(b->out_file, "Address already in use");
	/*
	 * A plugin built with the sanitizers needs their runtime in the broker
	 * (which is not built with them): CF_TEST_BROKER_PRELOAD names it.
	 * LeakSanitizer then checks the whole broker at exit, and Mosquitto
	 * 2.0.11 leaks an allocation (sub__add) whenever a persistent session
	 * subscribes again to a topic it holds, as every device does when it
	 * reconnects: Mosquitto's own allocator is suppressed (the plugin
	 * allocates with libc, never with it), for the broker only.
	 */
	if (preload != NULL && preload[0] != '\0') {
		env = cf_test_printf("LD_PRELOAD=%s", preload);
		lsan = cf_test_printf("LSAN_OPTIONS=suppressions=%s/lsan-mosquitto.supp:"
				      "print_suppressions=0",
				      b->dir);
		supp = cf_test_printf("%s/lsan-mosquitto.supp", b->dir);
		if (env == NULL || lsan == NULL || supp == NULL) {
			rc = -1;
			goto out;
		}
		cf_test_write_text(supp, "leak:mosquitto__calloc\n", 0644);
		with_env[1] = env;
		with_env[2] = lsan;
		argv = with_env;
	}
	rc = cf_test_bg_start(&b->proc, argv, b->out_file, b->out_file);
out:
	free(env);
	free(lsan);
	free(supp);
	if (rc != 0)
		return -1;
	deadline = cf_test_now_ms() + CF_TEST_BROKER_START_MS;
	while (cf_test_now_ms() < deadline) {
		if (!cf_test_bg_running(b->proc)) {
			cf_test_bg_free(b->proc);
			b->proc = NULL;
			if (cf_test_file_count(b->log_file, "Address already in use") +
				    cf_test_file_count(b->out_file, "Address already in use") >
			    busy_before)
				return 1;
			fprintf(stderr, "broker: mosquitto exited at start\n");
			show_broker_output(b);
			return -1;
		}
		if (tcp_accepts(b->port))
			return 0;
		sleep_ms(20);
	}
	fprintf(stderr, "broker: not accepting on port %d after %d ms\n", b->port,
		CF_TEST_BROKER_START_MS);
	show_broker_output(b);
	cf_test_bg_free(b->proc);
	b->proc = NULL;
	return -1;
}

char *
cf_test_broker_plugin_conf(const char *registry, int refresh_ms)
{
	char *plugin = cf_test_binary("broker/certfleet_broker.so");
	char *conf;

	if (plugin == NULL || access(plugin, R_OK) != 0) {
		fprintf(stderr, "broker: no plugin at %s\n", plugin != NULL ? plugin : "(null)");
		free(plugin);
		return NULL;
	}
	if (CF_TEST_SANITIZER_PRELOAD[0] != '\0')
		setenv("CF_TEST_BROKER_PRELOAD", CF_TEST_SANITIZER_PRELOAD, 1);
	conf = cf_test_printf("plugin %s\nplugin_opt_registry %s\nplugin_opt_refresh_ms %d\n",
			      plugin, registry, refresh_ms);
	free(plugin);
	return conf;
}

int
cf_test_broker_start(cf_test_broker **out, const char *dir, const char *client_ca_file,
		     const char *extra_conf)
{
	cf_test_broker *b;
	int tries, rc = -1;

	*out = NULL;
	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return -1;
	b->dir = strdup(dir);
	b->client_ca = strdup(client_ca_file);
	b->extra = extra_conf != NULL ? strdup(extra_conf) : NULL;
	b->conf = cf_test_printf("%s/mosquitto.conf", dir);
	b->ca_file = cf_test_printf("%s/broker-ca.pem", dir);
	b->log_file = cf_test_printf("%s/mosquitto.log", dir);
	b->out_file = cf_test_printf("%s/mosquitto.out", dir);
	if (b->dir == NULL || b->client_ca == NULL || (extra_conf != NULL && b->extra == NULL) ||
	    b->conf == NULL || b->ca_file == NULL || b->log_file == NULL || b->out_file == NULL)
		goto out;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "broker: mkdir %s: %s\n", dir, strerror(errno));
		goto out;
	}
	if (make_certs(b) != 0)
		goto out;
	for (tries = 0; tries < PORT_TRIES; tries++) {
		b->port = free_port();
		if (b->port <= 0) {
			fprintf(stderr, "broker: no free port: %s\n", strerror(errno));
			goto out;
		}
		rc = launch(b);
		if (rc != 1)
			break;
		fprintf(stderr, "broker: port %d was taken; trying another\n", b->port);
	}
	if (rc != 0) {
		rc = -1;
		goto out;
	}
	*out = b;
	b = NULL;
out:
	cf_test_broker_free(b);
	return rc;
}

int
cf_test_broker_port(const cf_test_broker *b)
{
	return b->port;
}

const char *
cf_test_broker_ca_file(const cf_test_broker *b)
{
	return b->ca_file;
}

const char *
cf_test_broker_log_file(const cf_test_broker *b)
{
	return b->log_file;
}

bool
cf_test_broker_running(cf_test_broker *b)
{
	return b->proc != NULL && cf_test_bg_running(b->proc);
}

int
cf_test_broker_stop(cf_test_broker *b)
{
	int status;

	if (b->proc == NULL)
		return 0;
	status = cf_test_bg_stop(b->proc, CF_TEST_STOP_MS);
	cf_test_bg_free(b->proc);
	b->proc = NULL;
	if (status != 0) {
		fprintf(stderr, "broker: mosquitto exited with status %d\n", status);
		return -1;
	}
	return 0;
}

int
cf_test_broker_restart(cf_test_broker *b)
{
	int tries, rc = -1;

	if (cf_test_broker_stop(b) != 0)
		return -1;
	for (tries = 0; tries < RESTART_TRIES; tries++) {
		rc = launch(b);
		if (rc != 1)
			break;
		sleep_ms(250);
	}
	if (rc != 0)
		fprintf(stderr, "broker: cannot restart on port %d\n", b->port);
	return rc == 0 ? 0 : -1;
}

void
cf_test_broker_free(cf_test_broker *b)
{
	if (b == NULL)
		return;
	if (b->proc != NULL) {
		cf_test_bg_stop(b->proc, CF_TEST_STOP_MS);
		cf_test_bg_free(b->proc);
	}
	free(b->dir);
	free(b->conf);
	free(b->ca_file);
	free(b->log_file);
	free(b->out_file);
	free(b->client_ca);
	free(b->extra);
	free(b);
}

/* ---- mosquitto_pub / mosquitto_sub ------------------------------------------- */

int
cf_test_mqtt_pub(const cf_test_broker *b, const char *cert, const char *key, const char *topic,
		 const char *payload)
{
	char port[16];
	const char *argv[] = {
		"mosquitto_pub", "-h", "127.0.0.1", "-p", port, "--cafile", b->ca_file,
		"--cert",        cert, "--key",     key,  "-q", "1",        "-t",
		topic,           "-m", payload,     NULL
	};
	cf_test_result r = CF_TEST_RESULT_INIT;
	int rc;

	snprintf(port, sizeof(port), "%d", b->port);
	rc = cf_test_run(&r, argv, 30) == 0 && r.status == 0 ? 0 : -1;
	if (rc != 0)
		fprintf(stderr, "broker: mosquitto_pub -t %s failed (exit %d):\n%s%s\n", topic,
			r.status, r.out != NULL ? r.out : "", r.err != NULL ? r.err : "");
	cf_test_result_clear(&r);
	return rc;
}

int
cf_test_mqtt_sub_start(cf_test_bg **out, const cf_test_broker *b, const char *cert, const char *key,
		       const char *client_id, const char *const *topics, const char *out_path)
{
	const char *argv[64];
	char port[16], *suback = NULL;
	size_t n = 0, i, before;
	cf_test_bg *p = NULL;
	int rc = -1;

	*out = NULL;
	snprintf(port, sizeof(port), "%d", b->port);
	suback = cf_test_printf("Sending SUBACK to %s\n", client_id);
	if (suback == NULL)
		return -1;
	argv[n++] = "mosquitto_sub";
	argv[n++] = "-h";
	argv[n++] = "127.0.0.1";
	argv[n++] = "-p";
	argv[n++] = port;
	argv[n++] = "--cafile";
	argv[n++] = b->ca_file;
	argv[n++] = "--cert";
	argv[n++] = cert;
	argv[n++] = "--key";
	argv[n++] = key;
	argv[n++] = "-i";
	argv[n++] = client_id;
	argv[n++] = "-c";
	argv[n++] = "-q";
	argv[n++] = "1";
	argv[n++] = "-v";
	for (i = 0; topics[i] != NULL && n < 60; i++) {
		argv[n++] = "-t";
		argv[n++] = topics[i];
	}
	argv[n] = NULL;
	before = cf_test_file_count(b->log_file, suback);
	if (cf_test_bg_start(&p, argv, out_path, out_path) != 0)
		goto out;
	/* All topics go in one SUBSCRIBE, so one SUBACK. */
	if (cf_test_file_wait(b->log_file, suback, before + 1, 10000) != 0) {
		fprintf(stderr, "broker: no SUBACK to %s within 10 s\n", client_id);
		show_broker_output(b);
		goto out;
	}
	*out = p;
	p = NULL;
	rc = 0;
out:
	cf_test_bg_free(p);
	free(suback);
	return rc;
}
