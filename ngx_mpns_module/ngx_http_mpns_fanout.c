
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_mpns_module.h"


/*
 * Every notification goes out through here: a single send, a "channels"
 * list, a broadcast, and the outbox's sends and broadcasts.  Recipients
 * are taken from the owner's source a few at a time, each is readied and
 * sent as one job, and every result passes the same completion step.
 */


/* what a job carries back to its fan-out, in the job's pool */
typedef struct {
    ngx_http_mpns_fanout_t        *fanout;
    ngx_str_t                      channel;
    ngx_http_mpns_message_t       *msg;       /* the owner's, as sent */

    /* the hold check, which may answer later */
    ngx_http_mpns_store_op_t       op;
    ngx_uint_t                     outcome;
    ngx_uint_t                     status;
    time_t                         left;
} ngx_http_mpns_recipient_t;


static ngx_int_t ngx_http_mpns_fanout_send(ngx_http_mpns_fanout_t *fo,
    ngx_str_t *channel, ngx_http_mpns_message_t *msg);
static ngx_int_t ngx_http_mpns_fanout_go(ngx_http_mpns_job_t *job,
    ngx_int_t held);
static void ngx_http_mpns_fanout_held(ngx_http_mpns_store_op_t *op);
static void ngx_http_mpns_fanout_job_done(ngx_http_mpns_job_t *job);
static void ngx_http_mpns_fanout_next_step(ngx_http_mpns_fanout_t *fo);
static ngx_int_t ngx_http_mpns_fanout_complete(ngx_http_mpns_fanout_t *fo,
    ngx_http_mpns_result_t *res, ngx_uint_t status);
static ngx_int_t ngx_http_mpns_fanout_result(ngx_http_mpns_fanout_t *fo,
    ngx_http_mpns_result_t *res);
static void ngx_http_mpns_fanout_wake_next(ngx_http_mpns_engine_t *engine,
    ngx_uint_t limit);
static void ngx_http_mpns_fanout_wake_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_mpns_fanout_paced(ngx_http_mpns_fanout_t *fo);
static void ngx_http_mpns_fanout_pace_handler(ngx_event_t *ev);
static void ngx_http_mpns_fanout_stop(ngx_http_mpns_fanout_t *fo);


/*
 * The one step that readies a job for a channel, whatever the path:
 * the channel checked against the location (allow-lists of hosts, ports
 * and addresses, scheme, length),
 * where to connect (address or name, TLS profile, proxy), the message of
 * this recipient, the request bytes from the service, the timeouts and
 * the retries.  NGX_DECLINED with "err" when the location does not take
 * the channel, or the message's payload callback refuses it.
 */

ngx_int_t
ngx_http_mpns_job_ready(ngx_http_mpns_job_t *job,
    ngx_http_mpns_loc_conf_t *mlcf, ngx_http_core_loc_conf_t *clcf,
    ngx_http_mpns_message_t *msg, ngx_str_t *channel,
    ngx_http_mpns_error_t *err)
{
    ngx_int_t                 rc;
    ngx_http_mpns_target_t    target;
    ngx_http_mpns_message_t  *own;

    rc = ngx_http_mpns_channel_check(job->parent_log, clcf, mlcf, channel,
                                     job->pool, job, &target, err);
    if (rc != NGX_OK) {
        return rc;
    }

    if (msg->payload) {
        own = ngx_palloc(job->pool, sizeof(ngx_http_mpns_message_t));
        if (own == NULL) {
            return NGX_ERROR;
        }

        rc = msg->payload(msg, channel, job->pool, job->parent_log, own, err);
        if (rc != NGX_OK) {
            return rc;
        }

        msg = own;
    }

    if (msg->secure && job->ssl == NULL) {
        err->status = NGX_HTTP_BAD_REQUEST;
        err->text = "a callback needs an https channel";
        ngx_str_set(&err->field, "channel");
        return NGX_DECLINED;
    }

    job->service = mlcf->service;
    job->status = mlcf->status;

    if (job->service->create_request(job->pool, msg, &target, &job->request)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    job->connect_timeout = mlcf->connect_timeout;
    job->send_timeout = mlcf->send_timeout;
    job->read_timeout = mlcf->read_timeout;
    job->response_timeout = mlcf->response_timeout;
    job->retries = mlcf->retries;
    job->retry_timeout = mlcf->retry_timeout;
    job->retry_delay = mlcf->retry_delay;

    return NGX_OK;
}


ngx_int_t
ngx_http_mpns_fanout_init(ngx_http_mpns_fanout_t *fo)
{
    ngx_http_mpns_main_conf_t  *mmcf;

    mmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_mpns_module);

    fo->engine = mmcf->engine;
    fo->limit = mmcf->worker_concurrency;

    if (fo->registry == NULL && fo->conf->broadcast
        && fo->conf->remove_expired)
    {
        fo->registry = ngx_http_mpns_registry_get(fo->conf->broadcast);
    }

    ngx_queue_init(&fo->jobs);

    fo->wake.handler = ngx_http_mpns_fanout_wake_handler;
    fo->wake.data = fo;
    fo->wake.log = fo->log;

    /* not cancelable: a leaving worker hands a broadcast back after it */

    fo->pace.handler = ngx_http_mpns_fanout_pace_handler;
    fo->pace.data = fo;
    fo->pace.log = fo->log;

    fo->start = ngx_current_msec;

    return NGX_OK;
}


void
ngx_http_mpns_fanout_pump(ngx_http_mpns_fanout_t *fo)
{
    ngx_int_t                rc;
    ngx_str_t                channel;
    ngx_http_mpns_engine_t  *engine;

    if (fo->pumping || fo->finished) {
        return;
    }

    fo->pumping = 1;
    engine = fo->engine;

    if (fo->woken) {
        /* the slot reserved when it was woken */
        engine->busy--;
    }

    while (!fo->exhausted && !fo->blocked && fo->active < fo->concurrency) {

        /*
         * the per-worker cap: a fan-out that finds it reached, or finds
         * others already waiting for it, queues up behind them
         */

        if (engine->busy >= fo->limit
            || (!fo->woken && !ngx_queue_empty(&engine->waiting)))
        {
            /* one already woken has a slot coming: its event pumps */

            if (!fo->waiting && !fo->wake.posted) {
                ngx_queue_insert_tail(&engine->waiting, &fo->queue);
                fo->waiting = 1;
            }

            break;
        }

        if (fo->request == NULL && (ngx_exiting || ngx_terminate)) {
            /* the owner keeps where it got to for the next workers */
            break;
        }

        if (fo->rate && ngx_http_mpns_fanout_paced(fo) != NGX_OK) {
            break;
        }

        rc = fo->next(fo, &channel);

        if (rc == NGX_AGAIN) {
            /* the source calls ngx_http_mpns_fanout_resume() */
            break;
        }

        if (rc == NGX_DONE) {
            fo->exhausted = 1;
            break;
        }

        if (rc == NGX_OK) {
            fo->started++;
            rc = ngx_http_mpns_fanout_send(fo, &channel, fo->msg);
        }

        if (rc != NGX_OK) {
            fo->error = 1;
            fo->exhausted = 1;
            break;
        }
    }

    fo->pumping = 0;

    if (fo->woken) {
        fo->woken = 0;

        /* slots it did not need go to the next one waiting */

        ngx_http_mpns_fanout_wake_next(engine, fo->limit);
    }

    if (fo->active == 0
        && (fo->exhausted
            || (fo->request == NULL && (ngx_exiting || ngx_terminate))))
    {
        ngx_http_mpns_fanout_stop(fo);
        fo->done(fo);
    }
}


static ngx_int_t
ngx_http_mpns_fanout_send(ngx_http_mpns_fanout_t *fo, ngx_str_t *channel,
    ngx_http_mpns_message_t *msg)
{
    ngx_int_t                   rc;
    ngx_http_mpns_job_t        *job;
    ngx_http_mpns_error_t       err;
    ngx_http_mpns_result_t      res;
    ngx_http_mpns_recipient_t  *rcpt;

    job = ngx_http_mpns_job_create(fo->engine, fo->log);
    if (job == NULL) {
        return NGX_ERROR;
    }

    rcpt = ngx_palloc(job->pool, sizeof(ngx_http_mpns_recipient_t));
    if (rcpt == NULL) {
        goto failed;
    }

    /* the job's strings live in its own pool, not in the owner's */

    rcpt->fanout = fo;
    rcpt->msg = msg;
    rcpt->channel.len = channel->len;
    rcpt->channel.data = ngx_pstrdup(job->pool, channel);

    if (rcpt->channel.data == NULL) {
        goto failed;
    }

    ngx_memzero(&res, sizeof(ngx_http_mpns_result_t));

    res.channel = rcpt->channel;
    res.log = fo->log;
    res.pin = (msg != fo->msg);

    rc = ngx_http_mpns_job_ready(job, fo->conf, fo->clcf, msg,
                                 &rcpt->channel, &err);

    if (rc == NGX_DECLINED) {

        /* not taken here (any more): nobody is asked */

        ngx_log_error(NGX_LOG_INFO, fo->log, 0,
                      "mpns send to \"%V\" refused: %s",
                      &rcpt->channel, err.text);

        res.outcome = NGX_HTTP_MPNS_REFUSED;
        res.error = &err;

        rc = ngx_http_mpns_fanout_result(fo, &res);

        ngx_http_mpns_job_cancel(job);

        return rc;
    }

    if (rc != NGX_OK) {
        goto failed;
    }

    job->retries = fo->retries;
    job->data = rcpt;

    ngx_queue_insert_tail(&fo->jobs, &job->queue);
    fo->active++;
    fo->engine->busy++;

    /* a 412 or 406 still holding: answered as it was, MPNS is not asked */

    rcpt->op.handler = ngx_http_mpns_fanout_held;
    rcpt->op.data = job;
    rcpt->op.log = fo->log;

    rc = ngx_http_mpns_hold_check(&fo->conf->hold, &rcpt->channel,
                                  &rcpt->outcome, &rcpt->status, &rcpt->left,
                                  &rcpt->op);

    if (rc == NGX_AGAIN) {
        /* the job waits for the store, counted in flight */
        return NGX_OK;
    }

    return ngx_http_mpns_fanout_go(job, rc);

failed:

    ngx_http_mpns_job_cancel(job);

    return NGX_ERROR;
}


/* the hold check's answer: "held" is NGX_OK when the channel is held */

static ngx_int_t
ngx_http_mpns_fanout_go(ngx_http_mpns_job_t *job, ngx_int_t held)
{
    ngx_http_mpns_recipient_t *rcpt = job->data;

    ngx_int_t                  rc;
    ngx_http_mpns_fanout_t    *fo;
    ngx_http_mpns_result_t     res;
    ngx_http_mpns_response_t   resp;

    fo = rcpt->fanout;

    if (held != NGX_OK && held != NGX_DECLINED) {
        held = NGX_DECLINED;
    }

    if (held == NGX_DECLINED) {
        job->handler = ngx_http_mpns_fanout_job_done;
        ngx_http_mpns_job_start(job);
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_INFO, fo->log, 0,
                  "mpns send to \"%V\" held: %V for %T s more",
                  &rcpt->channel, &ngx_http_mpns_outcome(rcpt->outcome)->name,
                  rcpt->left);

    ngx_memzero(&resp, sizeof(ngx_http_mpns_response_t));
    ngx_memzero(&res, sizeof(ngx_http_mpns_result_t));

    resp.status = rcpt->status;

    res.channel = rcpt->channel;
    res.outcome = rcpt->outcome;
    res.response = &resp;
    res.retry_after = rcpt->left;
    res.log = fo->log;
    res.held = 1;
    res.pin = (rcpt->msg != fo->msg);

    ngx_queue_remove(&job->queue);
    fo->active--;
    fo->engine->busy--;

    rc = ngx_http_mpns_fanout_result(fo, &res);

    ngx_http_mpns_job_cancel(job);

    ngx_http_mpns_fanout_wake_next(fo->engine, fo->limit);

    return rc;
}


static void
ngx_http_mpns_fanout_held(ngx_http_mpns_store_op_t *op)
{
    ngx_http_mpns_job_t *job = op->data;

    ngx_http_mpns_recipient_t *rcpt = job->data;

    ngx_http_mpns_fanout_t  *fo;

    fo = rcpt->fanout;

    if (ngx_http_mpns_fanout_go(job, op->rc) != NGX_OK) {
        fo->error = 1;
        fo->exhausted = 1;
    }

    ngx_http_mpns_fanout_next_step(fo);
}


/* a store the source waited for has answered */

void
ngx_http_mpns_fanout_resume(ngx_http_mpns_store_op_t *op)
{
    ngx_http_mpns_fanout_next_step(op->data);
}


static void
ngx_http_mpns_fanout_job_done(ngx_http_mpns_job_t *job)
{
    ngx_http_mpns_recipient_t *rcpt = job->data;

    ngx_http_mpns_fanout_t  *fo;
    ngx_http_mpns_result_t   res;

    fo = rcpt->fanout;

    ngx_queue_remove(&job->queue);
    fo->active--;
    fo->engine->busy--;

    ngx_memzero(&res, sizeof(ngx_http_mpns_result_t));

    res.channel = rcpt->channel;
    res.outcome = job->outcome;
    res.response = &job->response;
    res.attempts = job->attempts;
    res.elapsed = job->elapsed;
    res.log = &job->log;
    res.pin = (rcpt->msg != fo->msg);

    if (ngx_http_mpns_fanout_complete(fo, &res, job->response.status)
        != NGX_OK)
    {
        fo->error = 1;
        fo->exhausted = 1;

    } else if (rcpt->msg->follow
               && (res.outcome == NGX_HTTP_MPNS_DELIVERED
                   || res.outcome == NGX_HTTP_MPNS_SUPPRESSED)
               && fo->conf->service->shown
               && !fo->conf->service->shown(&job->response)
               && !fo->finished)
    {
        /* the same recipient again, with the raw notification */

        if (ngx_http_mpns_fanout_send(fo, &rcpt->channel,
                                      rcpt->msg->follow)
            != NGX_OK)
        {
            fo->error = 1;
            fo->exhausted = 1;
        }
    }

    ngx_http_mpns_fanout_wake_next(fo->engine, fo->limit);

    ngx_http_mpns_fanout_next_step(fo);
}


/* after an event: more recipients, or the end */

static void
ngx_http_mpns_fanout_next_step(ngx_http_mpns_fanout_t *fo)
{
    ngx_connection_t  *c;

    if (fo->pumping) {
        /* completed inside the pump: it goes on by itself */
        return;
    }

    /* the owner may finalize its request, and free the fan-out with it */

    c = fo->request ? fo->request->connection : NULL;

    ngx_http_mpns_fanout_pump(fo);

    if (c) {
        ngx_http_run_posted_requests(c);
    }
}


/*
 * What every answer leads to, on every path: a 412 or 406 held for the
 * channel, an expired channel out of the registry, then the owner's sink.
 */

static ngx_int_t
ngx_http_mpns_fanout_complete(ngx_http_mpns_fanout_t *fo,
    ngx_http_mpns_result_t *res, ngx_uint_t status)
{
    ngx_uint_t  deleted;

    (void) ngx_http_mpns_hold_set(&fo->conf->hold, &res->channel,
                                  res->outcome, status, res->log, NULL);

    res->retry_after = ngx_http_mpns_hold_window(&fo->conf->hold,
                                                 res->outcome);

    if (res->outcome == NGX_HTTP_MPNS_EXPIRED && fo->registry
        && ngx_http_mpns_registry_delete(fo->registry,
                                         NGX_HTTP_MPNS_BY_CHANNEL,
                                         &res->channel, &deleted, NULL)
           == NGX_OK
        && deleted)
    {
        res->removed = 1;
    }

    return ngx_http_mpns_fanout_result(fo, res);
}


/* every result, counted for mpns_status, then to the owner's sink */

static ngx_int_t
ngx_http_mpns_fanout_result(ngx_http_mpns_fanout_t *fo,
    ngx_http_mpns_result_t *res)
{
    ngx_http_mpns_status_result(fo->conf->status,
                                res->pin ? fo->msg->follow->type
                                         : fo->msg->type,
                                res->outcome, res->attempts, res->elapsed);

    return fo->record(fo, res);
}


static void
ngx_http_mpns_fanout_wake_next(ngx_http_mpns_engine_t *engine,
    ngx_uint_t limit)
{
    ngx_queue_t             *q;
    ngx_http_mpns_fanout_t  *fo;

    if (engine->busy >= limit || ngx_queue_empty(&engine->waiting)) {
        return;
    }

    q = ngx_queue_head(&engine->waiting);
    ngx_queue_remove(q);

    fo = ngx_queue_data(q, ngx_http_mpns_fanout_t, queue);
    fo->waiting = 0;

    /* the freed slot is kept for it until its event runs */

    engine->busy++;

    ngx_post_event(&fo->wake, &ngx_posted_events);
}


static void
ngx_http_mpns_fanout_wake_handler(ngx_event_t *ev)
{
    ngx_http_mpns_fanout_t *fo = ev->data;

    ngx_connection_t  *c;

    c = fo->request ? fo->request->connection : NULL;

    fo->woken = 1;

    ngx_http_mpns_fanout_pump(fo);

    if (c) {
        ngx_http_run_posted_requests(c);
    }
}


/*
 * mpns_rate: the n-th recipient is not sent before (n - 1) / rate seconds
 * after the first; NGX_AGAIN arms the timer for it
 */

static ngx_int_t
ngx_http_mpns_fanout_paced(ngx_http_mpns_fanout_t *fo)
{
    ngx_msec_t  due, elapsed;

    due = (ngx_msec_t) ((uint64_t) fo->started * 1000 / fo->rate);
    elapsed = ngx_current_msec - fo->start;

    if (elapsed >= due) {
        return NGX_OK;
    }

    if (!fo->pace.timer_set) {
        ngx_add_timer(&fo->pace, due - elapsed);
    }

    return NGX_AGAIN;
}


static void
ngx_http_mpns_fanout_pace_handler(ngx_event_t *ev)
{
    ngx_http_mpns_fanout_next_step(ev->data);
}


/* the fan-out sends nothing more: out of queues, timers and posted events */

static void
ngx_http_mpns_fanout_stop(ngx_http_mpns_fanout_t *fo)
{
    fo->finished = 1;

    if (fo->pace.timer_set) {
        ngx_del_timer(&fo->pace);
    }

    if (fo->waiting) {
        ngx_queue_remove(&fo->queue);
        fo->waiting = 0;
    }

    if (fo->wake.posted) {
        ngx_delete_posted_event(&fo->wake);
        fo->engine->busy--;
    }

    ngx_http_mpns_fanout_wake_next(fo->engine, fo->limit);
}


/* the client went away, or the worker is leaving: jobs in flight end */

void
ngx_http_mpns_fanout_cancel(ngx_http_mpns_fanout_t *fo)
{
    ngx_queue_t          *q;
    ngx_http_mpns_job_t  *job;

    if (fo->finished) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, fo->log, 0,
                   "mpns fan-out cancelled, %ui in flight", fo->active);

    while (!ngx_queue_empty(&fo->jobs)) {
        q = ngx_queue_head(&fo->jobs);
        ngx_queue_remove(q);

        job = ngx_queue_data(q, ngx_http_mpns_job_t, queue);
        ngx_http_mpns_job_cancel(job);

        fo->engine->busy--;
    }

    fo->active = 0;

    ngx_http_mpns_fanout_stop(fo);
}
