/*
 * certfleet-agent: the rotation agent for Linux devices, over libmosquitto.
 *
 * Usage: certfleet-agent [-c FILE]   (default /etc/certfleet/agent.conf)
 * The device's first key and certificate are provisioned by copying them to
 * STATE_DIR/current/key.pem and STATE_DIR/current/cert.pem (mode 0600).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certfleet/agent.h"

#define DEFAULT_CONFIG "/etc/certfleet/agent.conf"

struct conf {
	char broker_host[256];
	long broker_port;
	char client_id[129];
	char state_dir[1024];
	char ca_file[1024];
	char topic_prefix[256];
	char log_level[16];
};

static volatile sig_atomic_t stop_flag;

static void
on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: certfleet-agent [-c FILE] [--help]\n"
		"\n"
		"Keeps this device's certificate rotated with certfleet over MQTT.\n"
		"The config file (default " DEFAULT_CONFIG ") has lines 'key = value':\n"
		"  broker_host   broker name, also checked in its certificate (required)\n"
		"  broker_port   default 8883\n"
		"  client_id     MQTT client id = thing name (required)\n"
		"  state_dir     holds current/, staging/, previous/ (required)\n"
		"  ca_file       PEM trust anchors for the broker and new certificates (required)\n"
		"  topic_prefix  default management/topic\n"
		"  log_level     error, warn, info (default), debug\n"
		"Provision the first identity by copying key.pem and cert.pem into\n"
		"STATE_DIR/current/ (mode 0600). SIGTERM or SIGINT stop the agent cleanly.\n");
}

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static int
set_str(char *dst, size_t cap, const char *v)
{
	size_t n = strlen(v);

	if (n == 0 || n >= cap)
		return -1;
	memcpy(dst, v, n + 1);
	return 0;
}

static int
conf_load(struct conf *c, const char *path)
{
	char line[2048];
	FILE *f = fopen(path, "r");
	int lineno = 0, rc = 0;

	if (f == NULL) {
		fprintf(stderr, "certfleet-agent: cannot open %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
		char *k, *v, *eq, *end;

		lineno++;
		k = trim(line);
		if (*k == '\0' || *k == '#')
			continue;
		eq = strchr(k, '=');
		if (eq == NULL) {
			fprintf(stderr, "%s:%d: expected key = value\n", path, lineno);
			rc = -1;
			break;
		}
		*eq = '\0';
		v = trim(eq + 1);
		k = trim(k);
		if (strcmp(k, "broker_host") == 0) {
			rc = set_str(c->broker_host, sizeof(c->broker_host), v);
		} else if (strcmp(k, "broker_port") == 0) {
			errno = 0;
			c->broker_port = strtol(v, &end, 10);
			if (errno != 0 || *v == '\0' || *end != '\0' || c->broker_port < 1 ||
			    c->broker_port > 65535)
				rc = -1;
		} else if (strcmp(k, "client_id") == 0) {
			rc = set_str(c->client_id, sizeof(c->client_id), v);
		} else if (strcmp(k, "state_dir") == 0) {
			rc = set_str(c->state_dir, sizeof(c->state_dir), v);
		} else if (strcmp(k, "ca_file") == 0) {
			rc = set_str(c->ca_file, sizeof(c->ca_file), v);
		} else if (strcmp(k, "topic_prefix") == 0) {
			rc = set_str(c->topic_prefix, sizeof(c->topic_prefix), v);
		} else if (strcmp(k, "log_level") == 0) {
			rc = set_str(c->log_level, sizeof(c->log_level), v);
		} else {
			fprintf(stderr, "%s:%d: unknown key '%s'\n", path, lineno, k);
			rc = -1;
			break;
		}
		if (rc != 0)
			fprintf(stderr, "%s:%d: bad value for %s\n", path, lineno, k);
	}
	fclose(f);
	if (rc == 0 && (c->broker_host[0] == '\0' || c->client_id[0] == '\0' ||
			c->state_dir[0] == '\0' || c->ca_file[0] == '\0')) {
		fprintf(stderr, "%s: broker_host, client_id, state_dir and ca_file are required\n",
			path);
		rc = -1;
	}
	return rc;
}

static int
level_parse(cf_agent_log_level *out, const char *s)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	size_t i;

	for (i = 0; i < 4; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (cf_agent_log_level)i;
			return 0;
		}
	}
	return -1;
}

int
main(int argc, char **argv)
{
	struct conf c;
	const char *path = DEFAULT_CONFIG;
	cf_agent_config cfg;
	cf_agent_mosquitto_config mcfg;
	cf_agent_err err = { 0, NULL, { 0 } };
	cf_agent *agent = NULL;
	const cf_agent_transport *tp = cf_agent_mosquitto_transport();
	void *tctx = NULL;
	struct sigaction sa;
	int i, rc;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) &&
			   i + 1 < argc) {
			path = argv[++i];
		} else {
			usage(stderr);
			return 2;
		}
	}
	memset(&c, 0, sizeof(c));
	c.broker_port = 8883;
	if (conf_load(&c, path) != 0)
		return 1;
	cf_agent_config_init(&cfg);
	cfg.client_id = c.client_id;
	cfg.state_dir = c.state_dir;
	cfg.ca_file = c.ca_file;
	if (c.topic_prefix[0] != '\0')
		cfg.topic_prefix = c.topic_prefix;
	if (c.log_level[0] != '\0' && level_parse(&cfg.log_level, c.log_level) != 0) {
		fprintf(stderr, "%s: log_level must be error, warn, info or debug\n", path);
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (cf_agent_open(&agent, &cfg, &err) != CF_AGENT_OK) {
		fprintf(stderr, "certfleet-agent: %s\n", err.msg);
		return 1;
	}
	mcfg.host = c.broker_host;
	mcfg.port = (int)c.broker_port;
	mcfg.keepalive = 60;
	if (cf_agent_mosquitto_new(&tctx, &mcfg, &err) != CF_AGENT_OK) {
		fprintf(stderr, "certfleet-agent: %s\n", err.msg);
		cf_agent_free(agent);
		return 1;
	}
	rc = cf_agent_run(agent, tp, tctx, &stop_flag, &err);
	if (rc != CF_AGENT_OK)
		fprintf(stderr, "certfleet-agent: %s\n", err.msg);
	tp->destroy(tctx);
	cf_agent_free(agent);
	return rc == CF_AGENT_OK ? 0 : 1;
}
