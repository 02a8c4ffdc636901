/*
 * Test support: an HTTP server in the test process (libmicrohttpd, its own
 * thread) on 127.0.0.1 and a free port, recording every request (body and
 * the X-Certfleet-* headers) and answering a scripted status per request:
 * statuses[i] for the i-th, 200 after the script. For the webhook tests.
 * Functions return 0 on success and -1 on failure, as in support/run.h.
 */
#ifndef CF_TEST_HTTPD_H
#define CF_TEST_HTTPD_H

#include <stdbool.h>
#include <stddef.h>

typedef struct cf_test_httpd cf_test_httpd; /* opaque */

/* One request as received. Strings are NUL-terminated; a missing header is "". */
typedef struct cf_test_http_req {
	char *method;
	char *path;
	char *body;
	size_t len;
	char *content_type;
	char *signature; /* X-Certfleet-Signature */
	char *timestamp; /* X-Certfleet-Timestamp */
	char *event;     /* X-Certfleet-Event */
	int status;      /* what the server answered */
} cf_test_http_req;

void cf_test_http_req_clear(cf_test_http_req *req);

/* Start a server answering statuses[0..n) then 200 (statuses may be NULL when n is 0). */
int cf_test_httpd_start(cf_test_httpd **out, const int *statuses, size_t n);

int cf_test_httpd_port(const cf_test_httpd *h);

/* Requests received so far. */
size_t cf_test_httpd_count(cf_test_httpd *h);

/* A copy of request i (0-based) into out, cleared with cf_test_http_req_clear(). */
int cf_test_httpd_get(cf_test_httpd *h, size_t i, cf_test_http_req *out);

/* The index of the first request from index from on with X-Certfleet-Event event, or -1. */
long cf_test_httpd_find(cf_test_httpd *h, size_t from, const char *event);

/*
 * Whether r is signed with secret as a receiver checks it (docs/daemon.md):
 * X-Certfleet-Signature is "sha256=" and the lowercase hex HMAC-SHA256 of
 * X-Certfleet-Timestamp, "." and the body, computed here with OpenSSL, not
 * with certfleet's own code.
 */
bool cf_test_http_req_signed(const cf_test_http_req *r, const char *secret);

/* Wait until n requests were answered, at most timeout_ms. */
int cf_test_httpd_wait(cf_test_httpd *h, size_t n, int timeout_ms);

/* Stop the server and free everything. NULL is accepted. */
void cf_test_httpd_free(cf_test_httpd *h);

#endif
