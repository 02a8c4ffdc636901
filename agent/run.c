/* The blocking convenience runner: one agent over one transport. */
#include "agent_int.h"

#include <errno.h>
#include <time.h>

#define CONNECT_TIMEOUT_MS 15000
#define IO_TIMEOUT_MS      10000

/* Milliseconds of the monotonic clock, for the deadlines of the runner and transport. */
int64_t
cf_agent__now_ms(void)
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
	/* EINTR (a signal) ends the sleep early, which is what a stop wants. */
	(void)nanosleep(&ts, NULL);
}

int
cf_agent_run(cf_agent *agent, const cf_agent_transport *tp, void *ctx,
	     const volatile sig_atomic_t *stop, cf_agent_err *err)
{
	cf_agent_action act;
	bool connected = false;
	int64_t wait;
	int r;

	if (agent == NULL || tp == NULL || tp->version != CF_AGENT_TRANSPORT_VERSION ||
	    stop == NULL)
		return cf_agent__err_set(err, CF_AGENT_EINVAL, NULL, "agent, transport v%d, stop",
					 CF_AGENT_TRANSPORT_VERSION);
	cf_agent_start(agent, cf_agent__now_ms());
	while (!*stop) {
		wait = cf_agent_tick(agent, cf_agent__now_ms());
		while (!*stop && cf_agent_next_action(&act, agent) == 1) {
			switch (act.type) {
			case CF_AGENT_ACTION_CONNECT:
				r = tp->connect(ctx, &act.identity, CONNECT_TIMEOUT_MS, err);
				connected = r == CF_AGENT_CONNECT_OK;
				if (!connected)
					cf_agent__log_err(agent, err, "connect");
				cf_agent_connect_done(agent, act.id, (cf_agent_connect_result)r,
						      cf_agent__now_ms());
				break;
			case CF_AGENT_ACTION_SUBSCRIBE:
				r = tp->subscribe(ctx, act.topic, IO_TIMEOUT_MS, err);
				if (r != CF_AGENT_OK) {
					cf_agent__log_err(agent, err, "subscribe");
					connected = false;
					tp->disconnect(ctx);
					cf_agent_connection_lost(agent, cf_agent__now_ms());
				}
				break;
			case CF_AGENT_ACTION_PUBLISH:
				r = tp->publish(ctx, act.topic, act.payload, act.payload_len,
						IO_TIMEOUT_MS, err);
				cf_agent_publish_done(agent, act.id, r == CF_AGENT_OK);
				if (r != CF_AGENT_OK) {
					cf_agent__log_err(agent, err, "publish");
					connected = false;
					tp->disconnect(ctx);
					cf_agent_connection_lost(agent, cf_agent__now_ms());
				}
				break;
			default:
				break;
			}
			wait = 0;
		}
		if (*stop)
			break;
		if (wait == 0)
			wait = cf_agent_tick(agent, cf_agent__now_ms());
		if (wait <= 0)
			continue;
		if (connected) {
			r = tp->poll(ctx, agent, (int)wait, err);
			if (r != CF_AGENT_OK) {
				cf_agent__log_err(agent, err, "poll");
				connected = false;
				tp->disconnect(ctx);
				cf_agent_connection_lost(agent, cf_agent__now_ms());
			}
		} else {
			sleep_ms(wait);
		}
	}
	tp->disconnect(ctx);
	return CF_AGENT_OK;
}
