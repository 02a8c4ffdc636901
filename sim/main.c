/* certfleet-sim: a simulated fleet of certfleet devices (docs/sim.md). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "sim.h"

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int
usage_error(const char *usage, const cf_err *err)
{
	fprintf(stderr, "certfleet-sim: %s\n\n%s", err->msg, usage);
	return SIM_EXIT_USAGE;
}

static int
cmd_provision(int argc, char **argv)
{
	sim_provision_opts o;
	sim_provision_result res;
	cf_err err = CF_ERR_INIT;
	int rc;

	rc = sim_provision_opts_parse(&o, argc, argv, &err);
	if (rc == 1) {
		fputs(sim_provision_usage, stdout);
		return SIM_EXIT_OK;
	}
	if (rc != CF_OK)
		return usage_error(sim_provision_usage, &err);
	rc = sim_provision(&res, &o, &err);
	if (rc != CF_OK) {
		fprintf(stderr, "certfleet-sim: provision: %s%s%s%s\n", err.msg,
			err.reason != NULL ? " [" : "", err.reason != NULL ? err.reason : "",
			err.reason != NULL ? "]" : "");
		return SIM_EXIT_FAIL;
	}
	printf("provisioned %ld devices (%ld skipped) in %s in %.1f s\n", res.created, res.skipped,
	       o.state_dir, res.seconds);
	return SIM_EXIT_OK;
}

static int
cmd_run(int argc, char **argv)
{
	struct sigaction sa;
	sim_run_opts o;
	sim_stats stats;
	cf_err err = CF_ERR_INIT;
	int rc, code;

	rc = sim_run_opts_parse(&o, argc, argv, &err);
	if (rc == 1) {
		fputs(sim_run_usage, stdout);
		return SIM_EXIT_OK;
	}
	if (rc != CF_OK) {
		sim_run_opts_clear(&o);
		return usage_error(sim_run_usage, &err);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	o.stop = &stop;
	code = sim_run(&stats, &o, &err);
	if (stats.outcome == NULL) {
		fprintf(stderr, "certfleet-sim: run: %s\n", err.msg);
		sim_run_opts_clear(&o);
		return code;
	}
	sim_report_table(stdout, &stats);
	fflush(stdout);
	if (o.summary_path != NULL && sim_report_write(o.summary_path, &stats, &err) != CF_OK) {
		fprintf(stderr, "certfleet-sim: --summary: %s\n", err.msg);
		if (code == SIM_EXIT_OK)
			code = SIM_EXIT_FAIL;
	}
	if (strcmp(stats.outcome, "timeout") == 0)
		fprintf(stderr, "certfleet-sim: timed out with %ld of %ld devices rotated\n",
			stats.rotated, stats.devices);
	sim_run_opts_clear(&o);
	return code;
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(sim_usage, stderr);
		return SIM_EXIT_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		fputs(sim_usage, stdout);
		return SIM_EXIT_OK;
	}
	/*
	 * No OpenSSL secure heap here: thousands of device keys and TLS sessions
	 * would exhaust any fixed arena (key loads and handshakes then fail), and
	 * these are simulation keys.
	 */
	if (strcmp(argv[1], "provision") == 0)
		return cmd_provision(argc - 1, argv + 1);
	if (strcmp(argv[1], "run") == 0)
		return cmd_run(argc - 1, argv + 1);
	fprintf(stderr, "certfleet-sim: unknown command '%s'\n\n%s", argv[1], sim_usage);
	return SIM_EXIT_USAGE;
}
