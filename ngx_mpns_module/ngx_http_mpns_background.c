
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_mpns_module.h"


/*
 * Background sends.  A notification goes into the outbox and the request
 * is answered at once; every worker claims what is due on a timer, sends
 * it through a fan-out (of one, or of a broadcast's channels), and tells
 * the outbox what became of it: final, or due again when the service
 * asks for a delay.  Final results are POSTed to mpns_result_callback.
 * The outbox is reached only through its operations (outbox.h).
 */


#define NGX_HTTP_MPNS_DRAIN_INTERVAL    100
#define NGX_HTTP_MPNS_DRAIN_BATCH       32
#define NGX_HTTP_MPNS_CALLBACK_BACKOFF  1000
#define NGX_HTTP_MPNS_CALLBACK_MAX      60000

/* what a broadcast tracks of the recipients read and not all answered */
#define NGX_HTTP_MPNS_SPANS             64


/* this worker's runner of one outbox */
typedef struct {
    ngx_http_mpns_outbox_t        *outbox;
    ngx_http_mpns_loc_conf_t      *mlcf;
    ngx_http_core_loc_conf_t      *clcf;
    ngx_event_t                    drain;
    ngx_uint_t                     active;    /* runs and callbacks */
    ngx_uint_t                     claimed;   /* in this drain */
    ngx_uint_t                     calls;
    ngx_uint_t                     runs;
    ngx_http_mpns_job_t           *jobs[NGX_HTTP_MPNS_DRAIN_BATCH];
    ngx_event_t                   *starts[NGX_HTTP_MPNS_DRAIN_BATCH];
    ngx_http_mpns_store_op_t       op;
    unsigned                       claiming:1;
} ngx_http_mpns_runner_t;


/*
 * The recipients of a broadcast read from the registry at once, up to
 * "end", and how many of them were handed out and answered.
 */
typedef struct {
    ngx_queue_t                    queue;
    ngx_http_mpns_cursor_t         end;
    ngx_uint_t                     handed;
    ngx_uint_t                     answered;
} ngx_http_mpns_span_t;


/*
 * An entry being sent by this worker: a fan-out of one for a send, the
 * registry's channels for a broadcast, reporting into the entry, which
 * keeps a broadcast's cursor so that another worker can go on if this
 * one dies: a cursor before which every recipient was answered, so that
 * no recipient is skipped, and few are sent again.
 */
typedef struct {
    ngx_pool_t                    *pool;
    ngx_http_mpns_runner_t        *runner;
    uint64_t                       id;
    ngx_uint_t                     attempts;
    ngx_http_mpns_fanout_t         fanout;
    ngx_http_mpns_message_t        msg;
    ngx_http_mpns_reader_t        *reader;   /* NULL: one channel */
    ngx_str_t                      channel;
    uint32_t                       counts[NGX_HTTP_MPNS_OB_COUNTS];
    ngx_http_mpns_removed_t        removed;
    ngx_queue_t                    spans;     /* oldest first */
    ngx_queue_t                    free;
    ngx_uint_t                     nspans;
    ngx_http_mpns_cursor_t        *safe;      /* all before it answered */
    ngx_http_mpns_cursor_t        *last;      /* the last handed out */
    ngx_event_t                    start;
    ngx_http_mpns_store_op_t       op;

    unsigned                       taken:1;  /* the one channel */
    unsigned                       recorded:1;
} ngx_http_mpns_run_t;


/* a result callback in flight */
typedef struct {
    ngx_http_mpns_runner_t        *runner;
    uint64_t                       id;
    ngx_uint_t                     callbacks;
    ngx_http_mpns_store_op_t       op;
} ngx_http_mpns_report_t;


/* DELETE <location>/<id>, answered once the outbox has kept it */
typedef struct {
    ngx_http_request_t            *request;
    ngx_str_t                      json;
    ngx_http_mpns_store_op_t       op;
} ngx_http_mpns_cancel_t;


static void ngx_http_mpns_background_drain(ngx_event_t *ev);
static void ngx_http_mpns_background_claimed(ngx_http_mpns_store_op_t *op);
static void ngx_http_mpns_background_go(ngx_http_mpns_runner_t *rn);
static ngx_int_t ngx_http_mpns_background_claim(
    ngx_http_mpns_outbox_entry_t *e, void *data);
static ngx_int_t ngx_http_mpns_background_run(ngx_http_mpns_runner_t *rn,
    ngx_http_mpns_outbox_entry_t *e);
static void ngx_http_mpns_background_start(ngx_event_t *ev);
static ngx_int_t ngx_http_mpns_background_next(ngx_http_mpns_fanout_t *fo,
    ngx_str_t *channel);
static ngx_int_t ngx_http_mpns_background_sent(ngx_http_mpns_fanout_t *fo,
    ngx_http_mpns_result_t *res);
static ngx_int_t ngx_http_mpns_background_recipient(
    ngx_http_mpns_fanout_t *fo, ngx_http_mpns_result_t *res);
static void ngx_http_mpns_background_removed(ngx_http_mpns_run_t *run,
    ngx_str_t *channel);
static void ngx_http_mpns_background_done(ngx_http_mpns_fanout_t *fo);
static ngx_int_t ngx_http_mpns_background_handed(ngx_http_mpns_run_t *run,
    ngx_str_t *channel, ngx_uint_t refilled);
static void ngx_http_mpns_background_answered(ngx_http_mpns_run_t *run,
    ngx_str_t *channel);
static void ngx_http_mpns_background_progress(ngx_http_mpns_run_t *run,
    ngx_http_mpns_cursor_t *cursor, ngx_uint_t done);
static ngx_msec_t ngx_http_mpns_background_delay(ngx_http_mpns_runner_t *rn,
    ngx_http_mpns_result_t *res, ngx_uint_t attempts);
static ngx_http_mpns_job_t *ngx_http_mpns_background_report(
    ngx_http_mpns_runner_t *rn, ngx_http_mpns_outbox_entry_t *e);
static void ngx_http_mpns_background_reported(ngx_http_mpns_job_t *job);
static void ngx_http_mpns_background_cancelled(ngx_http_mpns_store_op_t *op);
static ngx_int_t ngx_http_mpns_background_unknown(ngx_http_request_t *r);


ngx_int_t
ngx_http_mpns_background_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                  i;
    ngx_shm_zone_t            **zones;
    ngx_http_mpns_runner_t     *rn;
    ngx_http_mpns_outbox_t     *ob;
    ngx_http_mpns_main_conf_t  *mmcf;

    mmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_mpns_module);

    if (mmcf == NULL) {
        return NGX_OK;
    }

    zones = mmcf->outboxes.elts;

    for (i = 0; i < mmcf->outboxes.nelts; i++) {
        ob = zones[i]->data;

        rn = ngx_pcalloc(cycle->pool, sizeof(ngx_http_mpns_runner_t));
        if (rn == NULL) {
            return NGX_ERROR;
        }

        rn->mlcf = ngx_http_mpns_outbox_location(ob, &rn->clcf);

        if (rn->mlcf == NULL) {
            /* no location sends from it */
            continue;
        }

        rn->outbox = ob;

        rn->drain.handler = ngx_http_mpns_background_drain;
        rn->drain.data = rn;
        rn->drain.log = cycle->log;
        rn->drain.cancelable = 1;

        rn->op.handler = ngx_http_mpns_background_claimed;
        rn->op.data = rn;
        rn->op.log = cycle->log;

        ngx_http_mpns_outbox_watch(ob, &rn->drain);

        ngx_add_timer(&rn->drain, NGX_HTTP_MPNS_DRAIN_INTERVAL);
    }

    return NGX_OK;
}


static void
ngx_http_mpns_background_drain(ngx_event_t *ev)
{
    ngx_http_mpns_runner_t *rn = ev->data;

    ngx_int_t                   rc;
    ngx_uint_t                  max;
    ngx_http_mpns_main_conf_t  *mmcf;

    if (ngx_exiting || ngx_terminate) {
        return;
    }

    if (rn->claiming) {
        /* the claim's completion drains again */
        return;
    }

    mmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_mpns_module);

    /*
     * mpns_concurrency: this worker's sends and callbacks in flight for the
     * outbox; nothing is taken while the worker has no slot for it
     */

    max = 0;

    if (rn->active < rn->mlcf->concurrency
        && mmcf->engine->busy < mmcf->worker_concurrency)
    {
        max = ngx_min(NGX_HTTP_MPNS_DRAIN_BATCH,
                      rn->mlcf->concurrency - rn->active);
    }

    rn->claimed = 0;
    rn->calls = 0;
    rn->runs = 0;

    if (max) {
        rc = ngx_http_mpns_outbox_claim(rn->outbox, max,
                                        ngx_http_mpns_background_claim, rn,
                                        &rn->claimed, &rn->op);

        if (rc == NGX_AGAIN) {
            /* nothing is sent before the outbox has kept its claim */
            rn->claiming = 1;
            return;
        }
    }

    ngx_http_mpns_background_go(rn);
}


static void
ngx_http_mpns_background_claimed(ngx_http_mpns_store_op_t *op)
{
    ngx_http_mpns_runner_t *rn = op->data;

    rn->claiming = 0;

    ngx_http_mpns_background_go(rn);
}


/* what a drain claimed starts, once the outbox is unlocked */

static void
ngx_http_mpns_background_go(ngx_http_mpns_runner_t *rn)
{
    ngx_uint_t  i;

    rn->active += rn->calls;

    for (i = 0; i < rn->calls; i++) {
        ngx_http_mpns_job_start(rn->jobs[i]);
    }

    for (i = 0; i < rn->runs; i++) {
        ngx_post_event(rn->starts[i], &ngx_posted_events);
    }

    if (rn->claimed == NGX_HTTP_MPNS_DRAIN_BATCH) {
        /* more may be due: on the next turn, after other events */
        ngx_post_event(&rn->drain, &ngx_posted_next_events);
        return;
    }

    if (!rn->drain.timer_set) {
        ngx_add_timer(&rn->drain, NGX_HTTP_MPNS_DRAIN_INTERVAL);
    }
}


/* called with the outbox locked: copies what the runner needs */

static ngx_int_t
ngx_http_mpns_background_claim(ngx_http_mpns_outbox_entry_t *e, void *data)
{
    ngx_http_mpns_runner_t *rn = data;

    ngx_http_mpns_job_t  *job;

    if (!e->report) {
        return ngx_http_mpns_background_run(rn, e) == NGX_OK ? NGX_OK
                                                             : NGX_DECLINED;
    }

    job = ngx_http_mpns_background_report(rn, e);

    if (job == NULL) {
        return NGX_DECLINED;
    }

    rn->jobs[rn->calls++] = job;

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_background_run(ngx_http_mpns_runner_t *rn,
    ngx_http_mpns_outbox_entry_t *e)
{
    u_char                  *p;
    size_t                   len;
    ngx_pool_t              *pool;
    ngx_http_mpns_run_t     *run;
    ngx_http_mpns_fanout_t  *fo;
    ngx_http_mpns_filter_t   filter;
    ngx_http_mpns_cursor_t  *cursor;

    if (e->broadcast && rn->mlcf->broadcast == NULL) {
        return NGX_ERROR;
    }

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, ngx_cycle->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    run = ngx_pcalloc(pool, sizeof(ngx_http_mpns_run_t));
    if (run == NULL) {
        goto failed;
    }

    run->pool = pool;
    run->runner = rn;
    run->id = e->id;
    run->attempts = e->attempts + 1;

    /* the entry's strings, copied out of the outbox */

    len = e->channel.len + e->msg.content_type.len + e->msg.target.len
          + e->msg.body.len + e->msg.message_id.len + e->filter.user.len
          + e->filter.tag.len + e->filter.os.len;

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        goto failed;
    }

    run->msg = e->msg;

    run->channel.data = p;
    run->channel.len = e->channel.len;
    p = ngx_cpymem(p, e->channel.data, e->channel.len);
    run->msg.content_type.data = p;
    p = ngx_cpymem(p, e->msg.content_type.data, e->msg.content_type.len);
    run->msg.target.data = p;
    p = ngx_cpymem(p, e->msg.target.data, e->msg.target.len);
    run->msg.body.data = p;
    p = ngx_cpymem(p, e->msg.body.data, e->msg.body.len);
    run->msg.message_id.data = p;
    p = ngx_cpymem(p, e->msg.message_id.data, e->msg.message_id.len);
    filter.user.data = p;
    filter.user.len = e->filter.user.len;
    p = ngx_cpymem(p, e->filter.user.data, e->filter.user.len);
    filter.tag.data = p;
    filter.tag.len = e->filter.tag.len;
    p = ngx_cpymem(p, e->filter.tag.data, e->filter.tag.len);
    filter.os.data = p;
    filter.os.len = e->filter.os.len;
    (void) ngx_cpymem(p, e->filter.os.data, e->filter.os.len);

    fo = &run->fanout;

    fo->conf = rn->mlcf;
    fo->clcf = rn->clcf;
    fo->msg = &run->msg;
    fo->log = ngx_cycle->log;
    fo->next = ngx_http_mpns_background_next;
    fo->done = ngx_http_mpns_background_done;
    fo->data = run;

    /* the outbox retries, in minutes, not the request in seconds */
    fo->retries = 0;

    run->op.log = ngx_cycle->log;

    if (e->broadcast) {
        fo->concurrency = rn->mlcf->concurrency;
        fo->rate = rn->mlcf->rate;
        fo->record = ngx_http_mpns_background_recipient;

        run->reader = ngx_http_mpns_reader_create(pool,
                          ngx_http_mpns_registry_get(rn->mlcf->broadcast),
                          &filter);
        if (run->reader == NULL) {
            goto failed;
        }

        run->reader->op.handler = ngx_http_mpns_fanout_resume;
        run->reader->op.data = fo;
        run->reader->op.log = ngx_cycle->log;

        /* where the last worker got to, and what it had counted */

        cursor = &run->reader->cursor;

        cursor->hash = e->cursor_hash;
        cursor->len = e->cursor.len;
        cursor->started = (e->cursor.len != 0);
        ngx_memcpy(cursor->channel, e->cursor.data, e->cursor.len);
        ngx_memcpy(run->counts, e->counts, sizeof(run->counts));

        run->removed = e->removed;
        run->removed.list.data = ngx_pnalloc(pool,
                                             NGX_HTTP_MPNS_REMOVED_LIST);
        if (run->removed.list.data == NULL) {
            goto failed;
        }

        ngx_memcpy(run->removed.list.data, e->removed.list.data,
                   e->removed.list.len);

        run->safe = ngx_palloc(pool, sizeof(ngx_http_mpns_cursor_t));
        run->last = ngx_palloc(pool, sizeof(ngx_http_mpns_cursor_t));

        if (run->safe == NULL || run->last == NULL) {
            goto failed;
        }

        *run->safe = *cursor;
        *run->last = *cursor;

        ngx_queue_init(&run->spans);
        ngx_queue_init(&run->free);

    } else {
        fo->concurrency = 1;
        fo->record = ngx_http_mpns_background_sent;
    }

    if (ngx_http_mpns_fanout_init(fo) != NGX_OK) {
        goto failed;
    }

    /* the pump takes the outbox's lock: it starts after the claim */

    run->start.handler = ngx_http_mpns_background_start;
    run->start.data = run;
    run->start.log = ngx_cycle->log;

    rn->active++;
    rn->starts[rn->runs++] = &run->start;

    return NGX_OK;

failed:

    ngx_destroy_pool(pool);

    return NGX_ERROR;
}


static void
ngx_http_mpns_background_start(ngx_event_t *ev)
{
    ngx_http_mpns_run_t *run = ev->data;

    ngx_http_mpns_fanout_pump(&run->fanout);
}


static ngx_int_t
ngx_http_mpns_background_next(ngx_http_mpns_fanout_t *fo, ngx_str_t *channel)
{
    ngx_http_mpns_run_t *run = fo->data;

    ngx_int_t   rc;
    ngx_uint_t  refilled;

    if (run->reader == NULL) {
        if (run->taken) {
            return NGX_DONE;
        }

        run->taken = 1;
        *channel = run->channel;

        return NGX_OK;
    }

    rc = ngx_http_mpns_reader_next(run->reader, channel, &refilled);

    if (rc == NGX_OK) {
        rc = ngx_http_mpns_background_handed(run, channel, refilled);
    }

    return rc;
}


/* a recipient handed out, in the span of the last refill */

static ngx_int_t
ngx_http_mpns_background_handed(ngx_http_mpns_run_t *run, ngx_str_t *channel,
    ngx_uint_t refilled)
{
    ngx_queue_t           *q;
    ngx_http_mpns_span_t  *span;

    if (refilled || ngx_queue_empty(&run->spans)) {

        if (run->nspans < NGX_HTTP_MPNS_SPANS
            || ngx_queue_empty(&run->spans))
        {
            if (!ngx_queue_empty(&run->free)) {
                q = ngx_queue_head(&run->free);
                ngx_queue_remove(q);
                span = ngx_queue_data(q, ngx_http_mpns_span_t, queue);

            } else {
                span = ngx_palloc(run->pool, sizeof(ngx_http_mpns_span_t));
                if (span == NULL) {
                    return NGX_ERROR;
                }
            }

            span->handed = 0;
            span->answered = 0;

            ngx_queue_insert_tail(&run->spans, &span->queue);
            run->nspans++;

        } else {
            /* a slow answer holds many: the newest one grows */
            span = ngx_queue_data(ngx_queue_last(&run->spans),
                                  ngx_http_mpns_span_t, queue);
        }

        span->end = run->reader->cursor;
    }

    span = ngx_queue_data(ngx_queue_last(&run->spans), ngx_http_mpns_span_t,
                          queue);
    span->handed++;

    ngx_http_mpns_registry_at(run->last, channel);

    return NGX_OK;
}


/*
 * A recipient answered: once the spans before the newest are answered in
 * full, the entry moves past them, should this worker die
 */

static void
ngx_http_mpns_background_answered(ngx_http_mpns_run_t *run,
    ngx_str_t *channel)
{
    ngx_uint_t             moved;
    ngx_queue_t           *q;
    ngx_http_mpns_span_t  *span;

    for (q = ngx_queue_head(&run->spans);
         q != ngx_queue_sentinel(&run->spans);
         q = ngx_queue_next(q))
    {
        span = ngx_queue_data(q, ngx_http_mpns_span_t, queue);

        if (ngx_http_mpns_registry_within(&span->end, channel)) {
            span->answered++;
            break;
        }
    }

    moved = 0;

    while (!ngx_queue_empty(&run->spans)) {
        q = ngx_queue_head(&run->spans);

        if (q == ngx_queue_last(&run->spans)) {
            /* more of it may be handed out yet */
            break;
        }

        span = ngx_queue_data(q, ngx_http_mpns_span_t, queue);

        if (span->answered < span->handed) {
            break;
        }

        *run->safe = span->end;

        ngx_queue_remove(q);
        ngx_queue_insert_tail(&run->free, q);
        run->nspans--;
        moved = 1;
    }

    if (moved) {
        ngx_http_mpns_background_progress(run, run->safe,
                                          NGX_HTTP_MPNS_OB_GOING);
    }
}


/* a send's result into its entry: the final answer, or when to try again */

static ngx_int_t
ngx_http_mpns_background_sent(ngx_http_mpns_fanout_t *fo,
    ngx_http_mpns_result_t *res)
{
    ngx_http_mpns_run_t *run = fo->data;

    ngx_msec_t  delay;

    run->recorded = 1;

    delay = ngx_http_mpns_background_delay(run->runner, res, run->attempts);

    if (ngx_http_mpns_outbox_sent(run->runner->outbox, run->id, res->outcome,
                                  res->response ? res->response->status : 0,
                                  delay, &run->op)
        == NGX_OK
        && delay)
    {
        ngx_log_error(NGX_LOG_INFO, res->log, 0,
                      "mpns background send %016xL %V, next try in %M ms",
                      run->id, &ngx_http_mpns_outcome(res->outcome)->name,
                      delay);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_background_recipient(ngx_http_mpns_fanout_t *fo,
    ngx_http_mpns_result_t *res)
{
    ngx_http_mpns_run_t *run = fo->data;

    u_char      id[NGX_HTTP_MPNS_ID_LEN];
    ngx_msec_t  delay;

    run->counts[NGX_HTTP_MPNS_OB_SENT]++;

    delay = ngx_http_mpns_background_delay(run->runner, res, 1);

    if (res->outcome == NGX_HTTP_MPNS_DELIVERED) {
        run->counts[NGX_HTTP_MPNS_OB_DELIVERED]++;

    } else if (res->outcome == NGX_HTTP_MPNS_EXPIRED) {
        run->counts[NGX_HTTP_MPNS_OB_EXPIRED]++;

        if (res->removed) {
            ngx_http_mpns_background_removed(run, &res->channel);
        }

    } else if (delay) {

        /* tried again on its own, as a send of the outbox */

        if (ngx_http_mpns_outbox_add(run->runner->mlcf->outbox.zone,
                                     &run->msg, &res->channel, NULL, NULL,
                                     ngx_http_mpns_outbox_now() + delay,
                                     id, &run->op)
            == NGX_OK)
        {
            run->counts[NGX_HTTP_MPNS_OB_DEFERRED]++;

        } else {
            run->counts[NGX_HTTP_MPNS_OB_FAILED]++;
        }

    } else {
        run->counts[NGX_HTTP_MPNS_OB_FAILED]++;
    }

    ngx_http_mpns_background_answered(run, &res->channel);

    return NGX_OK;
}


/* a channel the broadcast removed, listed while the list has room */

static void
ngx_http_mpns_background_removed(ngx_http_mpns_run_t *run,
    ngx_str_t *channel)
{
    u_char                   *p;
    ngx_http_mpns_removed_t  *rm;

    rm = &run->removed;
    rm->count++;

    if (rm->list.len + 1 + channel->len > NGX_HTTP_MPNS_REMOVED_LIST) {
        rm->truncated = 1;
        return;
    }

    /* one a line: a channel has no control characters */

    p = rm->list.data + rm->list.len;

    if (rm->list.len) {
        *p++ = LF;
    }

    p = ngx_cpymem(p, channel->data, channel->len);

    rm->list.len = p - rm->list.data;
}


/*
 * Every recipient is done, or the worker is leaving: a broadcast ends or
 * goes back to the outbox for the next workers, and so does a send that
 * could not be made.
 */

static void
ngx_http_mpns_background_done(ngx_http_mpns_fanout_t *fo)
{
    ngx_http_mpns_run_t *run = fo->data;

    if (run->reader) {

        if (fo->exhausted && !fo->error) {
            ngx_http_mpns_background_progress(run, run->last,
                                              NGX_HTTP_MPNS_OB_DONE);

        } else {
            /*
             * the worker is leaving, and every recipient it handed out is
             * answered: the next worker goes on after the last one; after
             * an error, after those surely answered
             */

            ngx_http_mpns_background_progress(run, fo->error ? run->safe
                                                             : run->last,
                                              NGX_HTTP_MPNS_OB_BACK);
        }

    } else if (!run->recorded) {
        (void) ngx_http_mpns_outbox_progress(run->runner->outbox, run->id,
                                             NULL, NULL, NULL,
                                             NGX_HTTP_MPNS_OB_BACK,
                                             &run->op);
    }

    run->runner->active--;
    ngx_destroy_pool(run->pool);
}


static void
ngx_http_mpns_background_progress(ngx_http_mpns_run_t *run,
    ngx_http_mpns_cursor_t *cursor, ngx_uint_t done)
{
    (void) ngx_http_mpns_outbox_progress(run->runner->outbox, run->id,
                                         cursor, run->counts, &run->removed,
                                         done, &run->op);
}


/* 0: the outcome is final */

static ngx_msec_t
ngx_http_mpns_background_delay(ngx_http_mpns_runner_t *rn,
    ngx_http_mpns_result_t *res, ngx_uint_t attempts)
{
    if (res->held) {
        /* not before the window another send opened ends */
        return (ngx_msec_t) res->retry_after * 1000;
    }

    return rn->mlcf->service->backoff(&rn->mlcf->outbox, res->outcome,
                                      attempts);
}


/* a final result POSTed to mpns_result_callback, as plain HTTP */

static ngx_http_mpns_job_t *
ngx_http_mpns_background_report(ngx_http_mpns_runner_t *rn,
    ngx_http_mpns_outbox_entry_t *e)
{
    u_char                     *body;
    size_t                      len;
    ngx_http_mpns_job_t        *job;
    ngx_http_mpns_target_t      target;
    ngx_http_mpns_message_t     msg;
    ngx_http_mpns_callback_t   *cb;
    ngx_http_mpns_report_t     *rp;
    ngx_http_mpns_main_conf_t  *mmcf;

    cb = rn->mlcf->outbox.callback;

    if (cb == NULL) {
        return NULL;
    }

    mmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_mpns_module);

    job = ngx_http_mpns_job_create(mmcf->engine, ngx_cycle->log);
    if (job == NULL) {
        return NULL;
    }

    rp = ngx_pcalloc(job->pool, sizeof(ngx_http_mpns_report_t));
    if (rp == NULL) {
        goto failed;
    }

    rp->runner = rn;
    rp->id = e->id;
    rp->callbacks = e->callbacks + 1;
    rp->op.log = ngx_cycle->log;

    /* the body first: its length goes into the header */

    len = ngx_http_mpns_outbox_result(e, NULL);

    body = ngx_pnalloc(job->pool, len);
    if (body == NULL) {
        goto failed;
    }

    ngx_memzero(&msg, sizeof(ngx_http_mpns_message_t));

    ngx_str_set(&msg.content_type, "application/json");
    msg.body.data = body;
    msg.body.len = ngx_http_mpns_outbox_result(e, body);

    target.host = cb->host;
    target.uri = cb->uri;

    job->service = &ngx_http_mpns_service_http;

    if (job->service->create_request(job->pool, &msg, &target, &job->request)
        != NGX_OK)
    {
        goto failed;
    }

    job->addrs = cb->addrs;
    job->naddrs = cb->naddrs;
    job->port = cb->port;
    job->name = cb->host;

    job->connect_timeout = rn->mlcf->connect_timeout;
    job->send_timeout = rn->mlcf->send_timeout;
    job->read_timeout = rn->mlcf->read_timeout;
    job->response_timeout = rn->mlcf->response_timeout;
    job->retries = 0;

    job->handler = ngx_http_mpns_background_reported;
    job->data = rp;

    return job;

failed:

    ngx_http_mpns_job_cancel(job);

    return NULL;
}


static void
ngx_http_mpns_background_reported(ngx_http_mpns_job_t *job)
{
    ngx_http_mpns_report_t *rp = job->data;

    ngx_msec_t  delay;

    rp->runner->active--;

    ngx_http_mpns_status_callback(rp->runner->mlcf->status,
                                  job->outcome == NGX_HTTP_MPNS_DELIVERED);

    if (job->outcome == NGX_HTTP_MPNS_DELIVERED) {
        (void) ngx_http_mpns_outbox_reported(rp->runner->outbox, rp->id, 1, 0,
                                             &rp->op);
        return;
    }

    delay = NGX_HTTP_MPNS_CALLBACK_BACKOFF << ngx_min(rp->callbacks - 1, 16);
    delay = ngx_min(delay, NGX_HTTP_MPNS_CALLBACK_MAX);

    if (ngx_http_mpns_outbox_reported(rp->runner->outbox, rp->id, 0, delay,
                                      &rp->op)
        == NGX_OK)
    {
        ngx_log_error(NGX_LOG_WARN, &job->log, 0,
                      "mpns result callback for %016xL failed (%ui), "
                      "next try in %M ms", rp->id, job->response.status,
                      delay);
    }
}


/* GET <location>/<id>: a background send's state */

ngx_int_t
ngx_http_mpns_background_status(ngx_http_request_t *r, ngx_str_t *id)
{
    ngx_int_t                  rc;
    ngx_str_t                  json;
    ngx_http_mpns_store_op_t   op;
    ngx_http_mpns_loc_conf_t  *mlcf;

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_mpns_module);

    op.handler = NULL;
    op.data = r;
    op.log = r->connection->log;

    rc = ngx_http_mpns_outbox_get(mlcf->outbox.zone->data, id, r->pool,
                                  &json, &op);

    if (rc == NGX_DECLINED) {
        return ngx_http_mpns_background_unknown(r);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_mpns_send_json(r, NGX_HTTP_OK, json.data, json.len);
}


/* DELETE <location>/<id>: no further send of it */

ngx_int_t
ngx_http_mpns_background_cancel(ngx_http_request_t *r, ngx_str_t *id)
{
    ngx_int_t                  rc;
    ngx_http_mpns_error_t      err;
    ngx_http_mpns_cancel_t    *cn;
    ngx_http_mpns_loc_conf_t  *mlcf;

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_mpns_module);

    cn = ngx_pcalloc(r->pool, sizeof(ngx_http_mpns_cancel_t));
    if (cn == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cn->request = r;
    cn->op.handler = ngx_http_mpns_background_cancelled;
    cn->op.data = cn;
    cn->op.log = r->connection->log;

    rc = ngx_http_mpns_outbox_cancel(mlcf->outbox.zone->data, id, r->pool,
                                     &cn->json, &cn->op);

    if (rc == NGX_DECLINED) {
        return ngx_http_mpns_background_unknown(r);
    }

    if (rc == NGX_BUSY) {
        err.status = NGX_HTTP_CONFLICT;
        err.text = "already finished";
        ngx_str_set(&err.field, "id");
        return ngx_http_mpns_send_error(r, &err);
    }

    if (rc == NGX_AGAIN) {
        /* answered once the journal has it */
        r->main->count++;
        return NGX_DONE;
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "mpns background send %V cancelled", id);

    return ngx_http_mpns_send_json(r, NGX_HTTP_OK, cn->json.data,
                                   cn->json.len);
}


static void
ngx_http_mpns_background_cancelled(ngx_http_mpns_store_op_t *op)
{
    ngx_http_mpns_cancel_t *cn = op->data;

    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = cn->request;
    c = r->connection;

    rc = (op->rc == NGX_OK)
         ? ngx_http_mpns_send_json(r, NGX_HTTP_OK, cn->json.data,
                                   cn->json.len)
         : NGX_HTTP_INTERNAL_SERVER_ERROR;

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* GET <location>/recurring: the recurring sends */

ngx_int_t
ngx_http_mpns_background_list(ngx_http_request_t *r)
{
    ngx_str_t                  json;
    ngx_http_mpns_loc_conf_t  *mlcf;

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_mpns_module);

    if (ngx_http_mpns_outbox_list(mlcf->outbox.zone->data, r->pool, &json)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_mpns_send_json(r, NGX_HTTP_OK, json.data, json.len);
}


static ngx_int_t
ngx_http_mpns_background_unknown(ngx_http_request_t *r)
{
    ngx_http_mpns_error_t  err;

    err.status = NGX_HTTP_NOT_FOUND;
    err.text = "not found";
    ngx_str_set(&err.field, "id");

    return ngx_http_mpns_send_error(r, &err);
}
