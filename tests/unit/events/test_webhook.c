/*
 * Unit tests for src/events/webhook.c: the HMAC-SHA256 signature (RFC 4231
 * vectors), the backoff window, what is retried, the queue and its retries
 * on a fake clock (connection refused on a closed local port), and real
 * requests to a server in the test process (support/httpd.h): headers,
 * a 500 retried, a 400 dropped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "events/events.h"
#include "support/httpd.h"

static int64_t fake_now;

static int64_t
fake_clock(void *payload)
{
	(void)payload;
	return fake_now;
}

static int64_t
real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A local port nobody listens on: bound, then closed. */
static int
closed_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

/* Step until stats.attempts reaches n (real time, at most 10 s). */
static void
step_until_attempts(cf_events_webhook *wh, uint64_t n)
{
	cf_events_webhook_stats st;
	int64_t end = real_ms() + 10000;

	for (;;) {
		cf_events_webhook_step(wh);
		cf_events_webhook_stats_get(&st, wh);
		if (st.attempts >= n)
			return;
		assert_true(real_ms() < end);
		usleep(2000);
	}
}

static void
test_events__sign_rfc4231(void **state)
{
	static const unsigned char key3[20] = { 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
						0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
						0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa };
	unsigned char data3[50];
	cf_err err = CF_ERR_INIT;
	char sig[65];
	const char *data = "what do ya want for nothing?";

	(void)state;
	/* Test case 2. */
	assert_int_equal(cf_events_sign(sig, "Jefe", 4, NULL, data, strlen(data), &err), CF_OK);
	assert_string_equal(sig, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	/* Test case 3. */
	memset(data3, 0xdd, sizeof(data3));
	assert_int_equal(cf_events_sign(sig, key3, sizeof(key3), NULL, data3, sizeof(data3), &err), CF_OK);
	assert_string_equal(sig, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
}

static void
test_events__backoff_window(void **state)
{
	unsigned int a;
	int64_t d;

	(void)state;
	assert_int_equal(cf_events_backoff_ms(1, 1000, 300000, 0), 500);
	assert_int_equal(cf_events_backoff_ms(1, 1000, 300000, 500), 1000);
	assert_int_equal(cf_events_backoff_ms(2, 1000, 300000, 0), 1000);
	assert_int_equal(cf_events_backoff_ms(3, 1000, 300000, 0), 2000);
	for (a = 1; a <= 40; a++) {
		int64_t full = a >= 20 ? 300000 : 1000LL << (a - 1);

		if (full > 300000)
			full = 300000;
		d = cf_events_backoff_ms(a, 1000, 300000, UINT32_MAX);
		assert_true(d >= full / 2 && d <= full);
		d = cf_events_backoff_ms(a, 1000, 300000, 12345);
		assert_true(d >= full / 2 && d <= full);
	}
}

static void
test_events__retryable(void **state)
{
	(void)state;
	assert_true(cf_events_retryable(7, 0));  /* CURLE_COULDNT_CONNECT */
	assert_true(cf_events_retryable(28, 0)); /* CURLE_OPERATION_TIMEDOUT */
	assert_true(cf_events_retryable(0, 500));
	assert_true(cf_events_retryable(0, 503));
	assert_true(cf_events_retryable(0, 429));
	assert_false(cf_events_retryable(0, 400));
	assert_false(cf_events_retryable(0, 401));
	assert_false(cf_events_retryable(0, 404));
}

static void
config_for(cf_events_webhook_config *wc, const char *url)
{
	cf_events_webhook_config_init(wc);
	wc->url = url;
	wc->secret = "s3cret";
	wc->secret_len = 6;
	wc->connect_timeout_ms = 2000;
	wc->timeout_ms = 3000;
	wc->clock = fake_clock;
}

static void
test_events__refused_config(void **state)
{
	cf_events_webhook_config wc;
	cf_events_webhook *wh = NULL;
	cf_err err = CF_ERR_INIT;

	(void)state;
	config_for(&wc, "ftp://example.com/");
	assert_int_equal(cf_events_webhook_new(&wh, &wc, &err), CF_EINVAL);
	assert_null(wh);
	config_for(&wc, "http://127.0.0.1/");
	wc.secret_len = 0;
	assert_int_equal(cf_events_webhook_new(&wh, &wc, &err), CF_EINVAL);
	assert_null(wh);
}

/* Connection refused: retried after the backoff on the fake clock, dropped after max_attempts. */
static void
test_events__retries_on_fake_clock(void **state)
{
	cf_events_webhook_config wc;
	cf_events_webhook_stats st;
	cf_events_webhook *wh = NULL;
	cf_err err = CF_ERR_INIT;
	char url[64];
	int i;

	(void)state;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", closed_port());
	config_for(&wc, url);
	wc.max_attempts = 3;
	wc.backoff_base_ms = 1000;
	fake_now = 1000000;
	assert_int_equal(cf_events_webhook_new(&wh, &wc, &err), CF_OK);
	assert_int_equal(cf_events_webhook_post(wh, "test", "{}", 2, &err), CF_OK);
	step_until_attempts(wh, 1);
	cf_events_webhook_stats_get(&st, wh);
	assert_int_equal(st.retried, 1);
	assert_int_equal(cf_events_webhook_pending(wh), 1);
	assert_false(cf_events_webhook_busy(wh));
	/* Not due before the backoff's lower bound (base / 2). */
	fake_now += 499;
	for (i = 0; i < 20; i++) {
		cf_events_webhook_step(wh);
		assert_false(cf_events_webhook_busy(wh));
	}
	/* Due by its upper bound. */
	fake_now += 501;
	step_until_attempts(wh, 2);
	cf_events_webhook_stats_get(&st, wh);
	assert_int_equal(st.retried, 2);
	/* Third attempt (the backoff doubled: at most 2 s), then dropped. */
	fake_now += 2000;
	step_until_attempts(wh, 3);
	cf_events_webhook_stats_get(&st, wh);
	assert_int_equal(st.retried, 2);
	assert_int_equal(st.dropped, 1);
	assert_int_equal(st.sent, 0);
	assert_int_equal(cf_events_webhook_pending(wh), 0);
	cf_events_webhook_free(wh);
}

/* A full queue drops its oldest, counted. */
static void
test_events__queue_drops_oldest(void **state)
{
	cf_events_webhook_config wc;
	cf_events_webhook_stats st;
	cf_events_webhook *wh = NULL;
	cf_err err = CF_ERR_INIT;

	(void)state;
	config_for(&wc, "http://127.0.0.1:9/hook");
	wc.queue_max = 2;
	fake_now = 5000;
	assert_int_equal(cf_events_webhook_new(&wh, &wc, &err), CF_OK);
	assert_int_equal(cf_events_webhook_post(wh, "a", "{\"n\":1}", 7, &err), CF_OK);
	assert_int_equal(cf_events_webhook_post(wh, "b", "{\"n\":2}", 7, &err), CF_OK);
	assert_int_equal(cf_events_webhook_post(wh, "c", "{\"n\":3}", 7, &err), CF_OK);
	assert_int_equal(cf_events_webhook_post(wh, "d", "", 0, &err), CF_EINVAL);
	cf_events_webhook_stats_get(&st, wh);
	assert_int_equal(st.queued, 3);
	assert_int_equal(st.dropped, 1);
	assert_int_equal(cf_events_webhook_pending(wh), 2);
	cf_events_webhook_free(wh); /* the two left are logged as dropped */
}

static void
check_signed(const cf_test_http_req *r, const char *secret)
{
	cf_err err = CF_ERR_INIT;
	char sig[65], want[80];

	assert_string_equal(r->method, "POST");
	assert_string_equal(r->path, "/hook");
	assert_string_equal(r->content_type, "application/json");
	assert_int_equal(cf_events_sign(sig, secret, strlen(secret), r->timestamp, r->body, r->len,
					&err),
			 CF_OK);
	snprintf(want, sizeof(want), "sha256=%s", sig);
	assert_string_equal(r->signature, want);
	assert_true(strtoll(r->timestamp, NULL, 10) > 1600000000);
}

/* A real server: 500 is retried, the retry is signed alike; 400 is not retried. */
static void
test_events__server_500_retried_400_dropped(void **state)
{
	static const int script[] = { 500, 200, 400 };
	cf_events_webhook_config wc;
	cf_events_webhook_stats st;
	cf_events_webhook *wh = NULL;
	cf_test_httpd *h = NULL;
	cf_test_http_req r0, r1, r2;
	cf_err err = CF_ERR_INIT;
	const char *body = "{\"event\":\"test\",\"n\":1}";
	char url[64];

	(void)state;
	assert_int_equal(cf_test_httpd_start(&h, script, 3), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", cf_test_httpd_port(h));
	config_for(&wc, url);
	fake_now = 0;
	assert_int_equal(cf_events_webhook_new(&wh, &wc, &err), CF_OK);
	assert_int_equal(cf_events_webhook_post(wh, "test", body, strlen(body), &err), CF_OK);
	step_until_attempts(wh, 1);
	fake_now += 1000;
	step_until_attempts(wh, 2);
	cf_events_webhook_stats_get(&st, wh);
	assert_int_equal(st.sent, 1);
	assert_int_equal(st.retried, 1);
	assert_int_equal(cf_events_webhook_post(wh, "test", "{\"n\":2}", 7, &err), CF_OK);
	step_until_attempts(wh, 3);
	cf_events_webhook_stats_get(&st, wh);
	assert_int_equal(st.sent, 1);
	assert_int_equal(st.dropped, 1);
	assert_int_equal(st.retried, 1);
	assert_int_equal(cf_events_webhook_pending(wh), 0);
	assert_int_equal(cf_test_httpd_count(h), 3);
	assert_int_equal(cf_test_httpd_get(h, 0, &r0), 0);
	assert_int_equal(cf_test_httpd_get(h, 1, &r1), 0);
	assert_int_equal(cf_test_httpd_get(h, 2, &r2), 0);
	assert_string_equal(r0.body, body);
	assert_string_equal(r1.body, body);
	assert_string_equal(r0.event, "test");
	check_signed(&r0, "s3cret");
	check_signed(&r1, "s3cret");
	check_signed(&r2, "s3cret");
	/* A new secret signs from now on. */
	assert_int_equal(cf_events_webhook_secret_set(wh, "other", 5, &err), CF_OK);
	assert_int_equal(cf_events_webhook_post(wh, "test", "{\"n\":3}", 7, &err), CF_OK);
	step_until_attempts(wh, 4);
	cf_test_http_req_clear(&r0);
	assert_int_equal(cf_test_httpd_get(h, 3, &r0), 0);
	check_signed(&r0, "other");
	cf_test_http_req_clear(&r0);
	cf_test_http_req_clear(&r1);
	cf_test_http_req_clear(&r2);
	cf_events_webhook_free(wh);
	cf_test_httpd_free(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_events__sign_rfc4231),
		cmocka_unit_test(test_events__backoff_window),
		cmocka_unit_test(test_events__retryable),
		cmocka_unit_test(test_events__refused_config),
		cmocka_unit_test(test_events__retries_on_fake_clock),
		cmocka_unit_test(test_events__queue_drops_oldest),
		cmocka_unit_test(test_events__server_500_retried_400_dropped),
	};

	return cmocka_run_group_tests_name("events", tests, NULL, NULL);
}
