/* The webhook notifier: a bounded queue, one libcurl multi transfer at a time. */
#include "events/events.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

/* Event tokens are kept to this many bytes. */
#define EVENT_MAX 48

struct item {
	char *body;
	size_t len;
	char event[EVENT_MAX];
	unsigned int attempts; /* finished so far */
	int64_t due_ms;        /* not started before this */
};

struct cf_events_webhook {
	cf_events_webhook_config cfg; /* url, ca_file and secret point at the copies below */
	char *url;
	char *ca_file;
	char *secret; /* OPENSSL_secure_malloc */
	size_t secret_len;
	CURLM *multi;
	CURL *easy;
	struct curl_slist *headers; /* of the request in flight */
	bool busy;                  /* items[0] is in flight */
	struct item *items;         /* items[0] is the oldest */
	size_t n;
	cf_events_webhook_stats stats;
};

static int64_t
monotonic_ms(void *payload)
{
	(void)payload;
	return cf_time_mono_ms();
}

static int64_t
now_ms(const cf_events_webhook *wh)
{
	return wh->cfg.clock(wh->cfg.clock_payload);
}

void
cf_events_webhook_config_init(cf_events_webhook_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->connect_timeout_ms = 5000;
	cfg->timeout_ms = 10000;
	cfg->max_attempts = 6;
	cfg->queue_max = 1000;
	cfg->backoff_base_ms = 1000;
	cfg->backoff_max_ms = 300000;
}

int
cf_events_sign(char out[65], const void *key, size_t key_len, const char *timestamp,
	       const void *body, size_t len, cf_err *err)
{
	char digest[] = "SHA256";
	OSSL_PARAM params[] = { OSSL_PARAM_construct_utf8_string("digest", digest, 0),
				OSSL_PARAM_construct_end() };
	EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = hmac != NULL ? EVP_MAC_CTX_new(hmac) : NULL;
	unsigned char mac[32];
	size_t mac_len = 0;
	int ok;

	out[0] = '\0';
	ok = ctx != NULL && EVP_MAC_init(ctx, key, key_len, params) == 1 &&
	     (timestamp == NULL ||
	      (EVP_MAC_update(ctx, (const unsigned char *)timestamp, strlen(timestamp)) == 1 &&
	       EVP_MAC_update(ctx, (const unsigned char *)".", 1) == 1)) &&
	     EVP_MAC_update(ctx, body, len) == 1 &&
	     EVP_MAC_final(ctx, mac, &mac_len, sizeof(mac)) == 1 && mac_len == sizeof(mac);
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(hmac);
	if (!ok)
		return cf_err_set_ossl(err, CF_ECRYPTO, NULL, "HMAC-SHA256");
	cf_hex_encode(out, mac, sizeof(mac));
	OPENSSL_cleanse(mac, sizeof(mac));
	return CF_OK;
}

int64_t
cf_events_backoff_ms(unsigned int attempt, int64_t base, int64_t max, uint32_t rnd)
{
	int64_t d = base > 0 ? base : 1;
	unsigned int i;

	for (i = 1; i < attempt && d < max; i++)
		d *= 2;
	if (d > max)
		d = max;
	return d - d / 2 + (int64_t)(rnd % (uint64_t)(d / 2 + 1));
}

bool
cf_events_retryable(int curl_rc, long http_status)
{
	if (curl_rc != CURLE_OK)
		return true; /* connection refused, DNS, timeout, TLS handshake, reset */
	return http_status >= 500 || http_status == 429;
}

static bool
url_valid(const char *url)
{
	return url != NULL && (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0) &&
	       strchr(url, '\n') == NULL && strchr(url, '\r') == NULL;
}

int
cf_events_webhook_new(cf_events_webhook **out, const cf_events_webhook_config *cfg,
		      cf_err *err)
{
	cf_events_webhook *wh = NULL;
	int rc;

	*out = NULL;
	if (!url_valid(cfg->url))
		return cf_err_set(err, CF_EINVAL, NULL, "webhook URL must start with http:// or https://");
	if (cfg->secret == NULL || cfg->secret_len == 0)
		return cf_err_set(err, CF_EINVAL, NULL, "webhook secret is empty");
	if (cfg->max_attempts == 0 || cfg->queue_max == 0)
		return cf_err_set(err, CF_EINVAL, NULL, "webhook attempts and queue must be > 0");
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return cf_err_set(err, CF_EIO, NULL, "curl_global_init failed");
	wh = calloc(1, sizeof(*wh));
	if (wh == NULL) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "webhook");
		goto out;
	}
	wh->cfg = *cfg;
	if (wh->cfg.clock == NULL)
		wh->cfg.clock = monotonic_ms;
	wh->url = strdup(cfg->url);
	wh->ca_file = cfg->ca_file != NULL && cfg->ca_file[0] != '\0' ? strdup(cfg->ca_file) : NULL;
	wh->secret = OPENSSL_secure_malloc(cfg->secret_len);
	wh->items = calloc(cfg->queue_max, sizeof(*wh->items));
	if (wh->url == NULL || wh->secret == NULL || wh->items == NULL ||
	    (cfg->ca_file != NULL && cfg->ca_file[0] != '\0' && wh->ca_file == NULL)) {
		rc = cf_err_set(err, CF_ENOMEM, NULL, "webhook");
		goto out;
	}
	memcpy(wh->secret, cfg->secret, cfg->secret_len);
	wh->secret_len = cfg->secret_len;
	wh->cfg.url = wh->url;
	wh->cfg.ca_file = wh->ca_file;
	wh->cfg.secret = NULL; /* only wh->secret holds it */
	wh->multi = curl_multi_init();
	wh->easy = curl_easy_init();
	if (wh->multi == NULL || wh->easy == NULL) {
		rc = cf_err_set(err, CF_EIO, NULL, "webhook: libcurl handles");
		goto out;
	}
	*out = wh;
	wh = NULL;
	rc = CF_OK;
out:
	cf_events_webhook_free(wh);
	return rc;
}

static void
item_clear(struct item *it)
{
	free(it->body);
	memset(it, 0, sizeof(*it));
}

/* Remove items[i], keeping the order. */
static void
item_remove(cf_events_webhook *wh, size_t i)
{
	item_clear(&wh->items[i]);
	memmove(&wh->items[i], &wh->items[i + 1], (wh->n - i - 1) * sizeof(*wh->items));
	wh->n--;
	memset(&wh->items[wh->n], 0, sizeof(*wh->items));
}

static void
transfer_end(cf_events_webhook *wh)
{
	if (!wh->busy)
		return;
	curl_multi_remove_handle(wh->multi, wh->easy);
	curl_slist_free_all(wh->headers);
	wh->headers = NULL;
	wh->busy = false;
}

void
cf_events_webhook_free(cf_events_webhook *wh)
{
	size_t i;

	if (wh == NULL)
		return;
	transfer_end(wh);
	if (wh->n > 0) {
		wh->stats.dropped += wh->n;
		cf_log_warn("event=webhook_dropped count=%zu why=\"pending at shutdown or reload\"",
			    wh->n);
	}
	for (i = 0; i < wh->n; i++)
		item_clear(&wh->items[i]);
	free(wh->items);
	if (wh->easy != NULL)
		curl_easy_cleanup(wh->easy);
	if (wh->multi != NULL)
		curl_multi_cleanup(wh->multi);
	if (wh->secret != NULL)
		OPENSSL_secure_clear_free(wh->secret, wh->secret_len);
	free(wh->url);
	free(wh->ca_file);
	free(wh);
}

int
cf_events_webhook_post(cf_events_webhook *wh, const char *event, const char *body, size_t len,
		       cf_err *err)
{
	struct item *it;
	size_t victim;

	if (body == NULL || len == 0)
		return cf_err_set(err, CF_EINVAL, NULL, "webhook: empty body");
	if (wh->n == wh->cfg.queue_max) {
		/* The oldest not in flight goes: the newest news is worth more. */
		victim = wh->busy ? 1 : 0;
		if (victim >= wh->n)
			return cf_err_set(err, CF_EBUSY, NULL, "webhook: queue full");
		wh->stats.dropped++;
		cf_log_warn("event=webhook_dropped why=queue_full notification=%s queue_max=%zu "
			    "dropped_total=%" PRIu64,
			    wh->items[victim].event, wh->cfg.queue_max, wh->stats.dropped);
		item_remove(wh, victim);
	}
	it = &wh->items[wh->n];
	it->body = malloc(len);
	if (it->body == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "webhook");
	memcpy(it->body, body, len);
	it->len = len;
	snprintf(it->event, sizeof(it->event), "%s", event != NULL ? event : "-");
	it->attempts = 0;
	it->due_ms = now_ms(wh);
	wh->n++;
	wh->stats.queued++;
	return CF_OK;
}

int
cf_events_webhook_secret_set(cf_events_webhook *wh, const char *secret, size_t len, cf_err *err)
{
	char *copy;

	if (secret == NULL || len == 0)
		return cf_err_set(err, CF_EINVAL, NULL, "webhook secret is empty");
	copy = OPENSSL_secure_malloc(len);
	if (copy == NULL)
		return cf_err_set(err, CF_ENOMEM, NULL, "webhook");
	memcpy(copy, secret, len);
	OPENSSL_secure_clear_free(wh->secret, wh->secret_len);
	wh->secret = copy;
	wh->secret_len = len;
	return CF_OK;
}

static size_t
discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	(void)ptr;
	(void)userdata;
	return size * nmemb;
}

static struct curl_slist *
header_add(struct curl_slist *list, bool *ok, const char *name, const char *value)
{
	char line[256];
	struct curl_slist *next;

	if (!*ok)
		return list;
	snprintf(line, sizeof(line), "%s: %s", name, value);
	next = curl_slist_append(list, line);
	if (next == NULL) {
		*ok = false;
		return list;
	}
	return next;
}

/* Start items[0]. false when it could not be set up (it is then dropped). */
static bool
transfer_start(cf_events_webhook *wh)
{
	struct item *it = &wh->items[0];
	cf_err err = CF_ERR_INIT;
	char sig[65], sigh[80], ts[32];
	bool ok = true;
	CURL *e = wh->easy;

	/* Signed with the body: a receiver can refuse an old request replayed. */
	snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
	if (cf_events_sign(sig, wh->secret, wh->secret_len, ts, it->body, it->len, &err) !=
	    CF_OK) {
		cf_log_warn_err(&err, "event=webhook_dropped notification=%s why=sign_failed",
				it->event);
		return false;
	}
	snprintf(sigh, sizeof(sigh), "sha256=%s", sig);
	wh->headers = header_add(NULL, &ok, "Content-Type", "application/json");
	wh->headers = header_add(wh->headers, &ok, CF_EVENTS_SIGNATURE_HEADER, sigh);
	wh->headers = header_add(wh->headers, &ok, CF_EVENTS_TIMESTAMP_HEADER, ts);
	wh->headers = header_add(wh->headers, &ok, CF_EVENTS_EVENT_HEADER, it->event);
	/* No "Expect: 100-continue" round trip. */
	wh->headers = header_add(wh->headers, &ok, "Expect", "");
	if (!ok) {
		curl_slist_free_all(wh->headers);
		wh->headers = NULL;
		cf_log_warn("event=webhook_dropped notification=%s why=out_of_memory", it->event);
		return false;
	}
	curl_easy_reset(e);
	curl_easy_setopt(e, CURLOPT_URL, wh->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, it->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)it->len);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, wh->headers);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "certfleetd");
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)wh->cfg.connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)wh->cfg.timeout_ms);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (wh->ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, wh->ca_file);
	if (curl_multi_add_handle(wh->multi, e) != CURLM_OK) {
		curl_slist_free_all(wh->headers);
		wh->headers = NULL;
		cf_log_warn("event=webhook_dropped notification=%s why=curl_multi_add_handle",
			    it->event);
		return false;
	}
	wh->busy = true;
	return true;
}

static uint32_t
random32(void)
{
	uint32_t r = 0;

	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = 0x7fffffff; /* the middle of the window: still bounded */
	return r;
}

/* items[0] finished with curl_rc and status: sent, retried later, or dropped. */
static void
transfer_done(cf_events_webhook *wh, CURLcode curl_rc, long status)
{
	struct item *it = &wh->items[0];
	int64_t delay;

	it->attempts++;
	wh->stats.attempts++;
	if (curl_rc == CURLE_OK && status >= 200 && status < 300) {
		wh->stats.sent++;
		cf_log_info("event=webhook_sent notification=%s status=%ld attempts=%u", it->event,
			    status, it->attempts);
		item_remove(wh, 0);
		return;
	}
	if (!cf_events_retryable((int)curl_rc, status)) {
		wh->stats.dropped++;
		cf_log_warn("event=webhook_dropped notification=%s status=%ld attempts=%u "
			    "why=refused dropped_total=%" PRIu64,
			    it->event, status, it->attempts, wh->stats.dropped);
		item_remove(wh, 0);
		return;
	}
	if (it->attempts >= wh->cfg.max_attempts) {
		wh->stats.dropped++;
		cf_log_warn("event=webhook_dropped notification=%s status=%ld error=\"%s\" "
			    "attempts=%u why=attempts_exhausted dropped_total=%" PRIu64,
			    it->event, status, curl_rc != CURLE_OK ? curl_easy_strerror(curl_rc) : "-",
			    it->attempts,
			    wh->stats.dropped);
		item_remove(wh, 0);
		return;
	}
	wh->stats.retried++;
	delay = cf_events_backoff_ms(it->attempts, wh->cfg.backoff_base_ms, wh->cfg.backoff_max_ms,
				     random32());
	it->due_ms = now_ms(wh) + delay;
	cf_log_warn("event=webhook_retry notification=%s status=%ld error=\"%s\" attempts=%u "
		    "retry_in_ms=%lld",
		    it->event, status, curl_rc != CURLE_OK ? curl_easy_strerror(curl_rc) : "-",
		    it->attempts, (long long)delay);
}

void
cf_events_webhook_step(cf_events_webhook *wh)
{
	CURLMsg *msg;
	int running = 0, left = 0;

	if (wh == NULL)
		return;
	if (!wh->busy) {
		/* Ready items in queue order; one that cannot be set up is dropped. */
		while (wh->n > 0 && wh->items[0].due_ms <= now_ms(wh) && !transfer_start(wh)) {
			wh->stats.dropped++;
			item_remove(wh, 0);
		}
		if (!wh->busy)
			return;
	}
	curl_multi_perform(wh->multi, &running);
	while ((msg = curl_multi_info_read(wh->multi, &left)) != NULL) {
		long status = 0;
		CURLcode crc;

		if (msg->msg != CURLMSG_DONE)
			continue;
		crc = msg->data.result;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
		transfer_end(wh);
		transfer_done(wh, crc, status);
	}
}

size_t
cf_events_webhook_pending(const cf_events_webhook *wh)
{
	return wh != NULL ? wh->n : 0;
}

size_t
cf_events_webhook_room(const cf_events_webhook *wh)
{
	return wh->cfg.queue_max - wh->n;
}

bool
cf_events_webhook_busy(const cf_events_webhook *wh)
{
	return wh != NULL && wh->busy;
}

void
cf_events_webhook_stats_get(cf_events_webhook_stats *out, const cf_events_webhook *wh)
{
	memset(out, 0, sizeof(*out));
	if (wh != NULL)
		*out = wh->stats;
}
