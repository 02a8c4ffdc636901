/* An HTTP server in the test process: libmicrohttpd with its own thread. */
#include "support/httpd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/evp.h>

#define REQ_MAX 256
#define BODY_MAX (1024 * 1024)

struct cf_test_httpd {
	struct MHD_Daemon *mhd;
	int port;
	pthread_mutex_t lock;
	int *statuses;
	size_t nstatuses;
	cf_test_http_req reqs[REQ_MAX];
	size_t n;
};

struct upload {
	char *buf;
	size_t len;
	int too_big;
};

static char *
dup_or_empty(const char *s)
{
	return strdup(s != NULL ? s : "");
}

void
cf_test_http_req_clear(cf_test_http_req *req)
{
	if (req == NULL)
		return;
	free(req->method);
	free(req->path);
	free(req->body);
	free(req->content_type);
	free(req->signature);
	free(req->timestamp);
	free(req->event);
	memset(req, 0, sizeof(*req));
}

static enum MHD_Result
handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
	const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	cf_test_httpd *h = cls;
	struct upload *up = *con_cls;
	struct MHD_Response *resp;
	cf_test_http_req *r;
	enum MHD_Result ret;
	int status = 200;

	(void)version;
	if (up == NULL) {
		up = calloc(1, sizeof(*up));
		if (up == NULL)
			return MHD_NO;
		*con_cls = up;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		if (up->len + *upload_data_size > BODY_MAX) {
			up->too_big = 1;
		} else {
			char *nb = realloc(up->buf, up->len + *upload_data_size + 1);

			if (nb == NULL)
				return MHD_NO;
			up->buf = nb;
			memcpy(up->buf + up->len, upload_data, *upload_data_size);
			up->len += *upload_data_size;
			up->buf[up->len] = '\0';
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	pthread_mutex_lock(&h->lock);
	if (h->n < h->nstatuses)
		status = h->statuses[h->n];
	if (h->n < REQ_MAX) {
		r = &h->reqs[h->n];
		r->method = dup_or_empty(method);
		r->path = dup_or_empty(url);
		r->body = dup_or_empty(up->buf);
		r->len = up->len;
		r->content_type = dup_or_empty(
			MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type"));
		r->signature = dup_or_empty(
			MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Certfleet-Signature"));
		r->timestamp = dup_or_empty(
			MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Certfleet-Timestamp"));
		r->event = dup_or_empty(
			MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Certfleet-Event"));
		r->status = status;
		h->n++;
	}
	pthread_mutex_unlock(&h->lock);
	resp = MHD_create_response_from_buffer(2, (void *)(uintptr_t)"ok", MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
		return MHD_NO;
	ret = MHD_queue_response(c, (unsigned int)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void
completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct upload *up = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (up != NULL) {
		free(up->buf);
		free(up);
	}
	*con_cls = NULL;
}

int
cf_test_httpd_start(cf_test_httpd **out, const int *statuses, size_t n)
{
	cf_test_httpd *h = calloc(1, sizeof(*h));
	struct sockaddr_in sin;
	const union MHD_DaemonInfo *info;

	*out = NULL;
	if (h == NULL)
		return -1;
	pthread_mutex_init(&h->lock, NULL);
	if (n > 0) {
		h->statuses = calloc(n, sizeof(int));
		if (h->statuses == NULL) {
			free(h);
			return -1;
		}
		memcpy(h->statuses, statuses, n * sizeof(int));
		h->nstatuses = n;
	}
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = 0;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	h->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, handler, h,
				  MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
				  MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
	if (h->mhd == NULL) {
		fprintf(stderr, "httpd: MHD_start_daemon failed\n");
		cf_test_httpd_free(h);
		return -1;
	}
	info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
	if (info == NULL || info->port == 0) {
		cf_test_httpd_free(h);
		return -1;
	}
	h->port = info->port;
	*out = h;
	return 0;
}

int
cf_test_httpd_port(const cf_test_httpd *h)
{
	return h->port;
}

size_t
cf_test_httpd_count(cf_test_httpd *h)
{
	size_t n;

	pthread_mutex_lock(&h->lock);
	n = h->n;
	pthread_mutex_unlock(&h->lock);
	return n;
}

int
cf_test_httpd_get(cf_test_httpd *h, size_t i, cf_test_http_req *out)
{
	const cf_test_http_req *r;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&h->lock);
	if (i < h->n) {
		r = &h->reqs[i];
		out->method = strdup(r->method);
		out->path = strdup(r->path);
		out->body = strdup(r->body);
		out->len = r->len;
		out->content_type = strdup(r->content_type);
		out->signature = strdup(r->signature);
		out->timestamp = strdup(r->timestamp);
		out->event = strdup(r->event);
		out->status = r->status;
		rc = 0;
	}
	pthread_mutex_unlock(&h->lock);
	return rc;
}

long
cf_test_httpd_find(cf_test_httpd *h, size_t from, const char *event)
{
	long found = -1;
	size_t i;

	pthread_mutex_lock(&h->lock);
	for (i = from; i < h->n && found < 0; i++)
		if (strcmp(h->reqs[i].event, event) == 0)
			found = (long)i;
	pthread_mutex_unlock(&h->lock);
	return found;
}

bool
cf_test_http_req_signed(const cf_test_http_req *r, const char *secret)
{
	unsigned char mac[32];
	size_t mac_len = 0, i, tlen, len;
	char want[7 + 65] = "sha256=", *text;
	bool ok;

	if (r->signature == NULL || r->body == NULL || r->timestamp == NULL)
		return false;
	/* TIMESTAMP "." BODY */
	tlen = strlen(r->timestamp);
	len = tlen + 1 + r->len;
	text = malloc(len);
	if (text == NULL)
		return false;
	memcpy(text, r->timestamp, tlen);
	text[tlen] = '.';
	memcpy(text + tlen + 1, r->body, r->len);
	ok = EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, strlen(secret),
		       (const unsigned char *)text, len, mac, sizeof(mac), &mac_len) != NULL &&
	     mac_len == sizeof(mac);
	free(text);
	if (!ok)
		return false;
	for (i = 0; i < sizeof(mac); i++)
		snprintf(want + 7 + 2 * i, 3, "%02x", mac[i]);
	return strcmp(r->signature, want) == 0;
}

int
cf_test_httpd_wait(cf_test_httpd *h, size_t n, int timeout_ms)
{
	int waited = 0;

	while (cf_test_httpd_count(h) < n) {
		if (waited >= timeout_ms) {
			fprintf(stderr, "httpd: %zu requests after %d ms, wanted %zu\n",
				cf_test_httpd_count(h), timeout_ms, n);
			return -1;
		}
		usleep(10 * 1000);
		waited += 10;
	}
	return 0;
}

void
cf_test_httpd_free(cf_test_httpd *h)
{
	size_t i;

	if (h == NULL)
		return;
	if (h->mhd != NULL)
		MHD_stop_daemon(h->mhd);
	for (i = 0; i < h->n; i++)
		cf_test_http_req_clear(&h->reqs[i]);
	pthread_mutex_destroy(&h->lock);
	free(h->statuses);
	free(h);
}
