/* Counters, the progress line and the summary (table and JSON). */
#include <stdlib.h>
#include <string.h>

#include "sim.h"

void
sim_tally_add(sim_tally *t, const char *token)
{
	char name[sizeof(t->e[0].name)];
	size_t len, i;

	if (token == NULL || token[0] == '\0')
		token = "UNKNOWN";
	len = strcspn(token, ": \t");
	if (len == 0) {
		token = "UNKNOWN";
		len = strlen(token);
	}
	if (len >= sizeof(name))
		len = sizeof(name) - 1;
	memcpy(name, token, len);
	name[len] = '\0';
	t->total++;
	for (i = 0; i < t->n; i++) {
		if (strcmp(t->e[i].name, name) == 0) {
			t->e[i].count++;
			return;
		}
	}
	/* The last slot is kept for OTHER. */
	if (t->n >= SIM_TALLY_MAX - 1) {
		len = strlen("OTHER");
		memcpy(name, "OTHER", len + 1);
		if (t->n == SIM_TALLY_MAX) {
			t->e[SIM_TALLY_MAX - 1].count++;
			return;
		}
	}
	memcpy(t->e[t->n].name, name, len + 1);
	t->e[t->n].count = 1;
	t->n++;
}

static double
seconds(int64_t from, int64_t to)
{
	return to > from ? (double)(to - from) / 1000.0 : 0.0;
}

/* Rotations per second from the first csr_req to the last rotation. */
static double
rate(const sim_stats *s)
{
	double window = seconds(s->first_csr_req_ms, s->last_rotated_ms);

	if (s->rotated == 0 || s->first_csr_req_ms == 0)
		return 0.0;
	return window > 0 ? (double)s->rotated / window : 0.0;
}

static void
tally_line(FILE *fp, const sim_tally *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		fprintf(fp, "%s%s:%ld", i > 0 ? "," : "", t->e[i].name, t->e[i].count);
}

void
sim_report_progress(FILE *fp, const sim_stats *s, int64_t now_ms)
{
	fprintf(fp,
		"t=%.1fs connected=%ld/%ld connecting=%ld offline=%ld csr_req=%ld csr_sent=%ld "
		"rotated=%ld failed=%ld rejected=%ld",
		seconds(s->start_ms, now_ms), s->connected, s->devices, s->connecting, s->offline,
		s->csr_req, s->csr_sent, s->rotated, s->failed.total, s->rejected.total);
	if (s->rejected.n > 0) {
		fputs(" (", fp);
		tally_line(fp, &s->rejected);
		fputc(')', fp);
	}
	fprintf(fp, " connect_failures=%ld", s->connect_failures);
}

static void
tally_table(FILE *fp, const char *label, const sim_tally *t)
{
	size_t i;

	fprintf(fp, "  %-26s %ld\n", label, t->total);
	for (i = 0; i < t->n; i++)
		fprintf(fp, "    %-24s %ld\n", t->e[i].name, t->e[i].count);
}

void
sim_report_table(FILE *fp, const sim_stats *s)
{
	int k;

	fprintf(fp, "certfleet-sim summary (%s)\n", s->outcome != NULL ? s->outcome : "-");
	fprintf(fp, "  %-26s %ld\n", "devices", s->devices);
	for (k = 0; k < SIM_FAULT_COUNT; k++)
		if (s->fault_devices[k] > 0)
			fprintf(fp, "    fault %-18s %ld\n", sim_fault_name((sim_fault_kind)k),
				s->fault_devices[k]);
	fprintf(fp, "  %-26s %ld / %ld\n", "rotated", s->rotated, s->devices);
	fprintf(fp, "  %-26s %ld\n", "rotations (promoted)", s->rotations);
	tally_table(fp, "failed (crt_err)", &s->failed);
	tally_table(fp, "rejected (csr_rej)", &s->rejected);
	fprintf(fp, "  %-26s %ld\n", "csr_req received", s->csr_req);
	fprintf(fp, "  %-26s %ld\n", "csr_res sent", s->csr_sent);
	fprintf(fp, "  %-26s %ld\n", "crt received", s->crt);
	fprintf(fp, "  %-26s %ld\n", "fell back", s->fell_back);
	fprintf(fp, "  %-26s %ld\n", "crashes", s->crashes);
	fprintf(fp, "  %-26s %ld\n", "connects", s->connects);
	fprintf(fp, "  %-26s %ld\n", "connect failures", s->connect_failures);
	fprintf(fp, "  %-26s %ld\n", "connections lost", s->connections_lost);
	fprintf(fp, "  %-26s %.1f\n", "elapsed s", seconds(s->start_ms, s->end_ms));
	fprintf(fp, "  %-26s %.1f\n", "rotations/s", rate(s));
}

static json_t *
tally_json(const sim_tally *t)
{
	json_t *o = json_object();
	size_t i;

	for (i = 0; o != NULL && i < t->n; i++)
		json_object_set_new(o, t->e[i].name, json_integer(t->e[i].count));
	return o;
}

json_t *
sim_report_json(const sim_stats *s)
{
	json_t *faults = json_object();
	json_t *o;
	int k;

	for (k = 0; faults != NULL && k < SIM_FAULT_COUNT; k++)
		if (s->fault_devices[k] > 0)
			json_object_set_new(faults, sim_fault_name((sim_fault_kind)k),
					    json_integer(s->fault_devices[k]));
	o = json_pack("{s:s, s:I, s:o*, s:I, s:I, s:I, s:o*, s:I, s:o*, s:I, s:I, s:I, s:I, "
		      "s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f}",
		      "outcome", s->outcome != NULL ? s->outcome : "", "devices",
		      (json_int_t)s->devices, "faults", faults, "rotated", (json_int_t)s->rotated,
		      "rotations", (json_int_t)s->rotations, "failed", (json_int_t)s->failed.total,
		      "failed_by_reason", tally_json(&s->failed), "rejected",
		      (json_int_t)s->rejected.total, "rejected_by_code", tally_json(&s->rejected),
		      "csr_req", (json_int_t)s->csr_req, "csr_sent", (json_int_t)s->csr_sent, "crt",
		      (json_int_t)s->crt, "fell_back", (json_int_t)s->fell_back, "crashes",
		      (json_int_t)s->crashes, "connects", (json_int_t)s->connects,
		      "connect_failures", (json_int_t)s->connect_failures, "connections_lost",
		      (json_int_t)s->connections_lost, "connected_at_end", (json_int_t)s->connected,
		      "elapsed_seconds", seconds(s->start_ms, s->end_ms), "rotation_seconds",
		      s->rotated > 0 ? seconds(s->first_csr_req_ms, s->last_rotated_ms) : 0.0,
		      "rotations_per_second", rate(s));
	return o;
}

int
sim_report_write(const char *path, const sim_stats *s, cf_err *err)
{
	json_t *o = sim_report_json(s);
	char *text =
		o != NULL ? json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(6))
			  : NULL;
	char *line = NULL;
	size_t len;
	int rc;

	json_decref(o);
	len = text != NULL ? strlen(text) : 0;
	line = text != NULL ? malloc(len + 2) : NULL;
	if (line == NULL) {
		free(text);
		return cf_err_set(err, CF_ENOMEM, NULL, "summary");
	}
	memcpy(line, text, len);
	line[len] = '\n';
	line[len + 1] = '\0';
	rc = cf_file_write_atomic(path, line, len + 1, 0644, false, err);
	free(line);
	free(text);
	return rc;
}
