
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_mpns_module.h"


/*
 * One notification to many channels: an explicit "channels" list of
 * mpns_send, or the registry entries of mpns_broadcast.  Recipients are
 * produced lazily, a few at a time, and each gets its own engine job, so
 * the memory of a batch follows mpns_concurrency, not its size.
 */


#define NGX_HTTP_MPNS_LINE_SIZE         4096   /* one NDJSON output buffer */
#define NGX_HTTP_MPNS_FLUSH_DELAY       100


typedef struct {
    ngx_str_t                      channel;
    ngx_uint_t                     outcome;
    ngx_uint_t                     status;
} ngx_http_mpns_failure_t;


/* what a job carries back to its batch, in the job's pool */
typedef struct {
    ngx_http_mpns_batch_t         *batch;
    ngx_str_t                      channel;
} ngx_http_mpns_recipient_t;


struct ngx_http_mpns_batch_s {
    ngx_http_request_t            *request;
    ngx_http_mpns_ctx_t           *ctx;
    ngx_http_mpns_loc_conf_t      *mlcf;
    ngx_http_mpns_main_conf_t     *mmcf;
    ngx_http_mpns_engine_t        *engine;
    ngx_http_mpns_message_t       *msg;

    /* recipients: the tokens of a JSON array ... */
    ngx_http_mpns_json_tok_t      *tokens;
    ngx_uint_t                     token;
    ngx_uint_t                     left;

    /* ... or the registry */
    ngx_http_mpns_reader_t        *reader;

    ngx_queue_t                    jobs;
    ngx_uint_t                     active;
    ngx_queue_t                    queue;     /* in engine->waiting */
    ngx_event_t                    wake;

    ngx_uint_t                     outcomes[NGX_HTTP_MPNS_NOUTCOMES];
    ngx_uint_t                     removed;
    ngx_array_t                    failures;  /* ngx_http_mpns_failure_t */
    ngx_uint_t                     omitted;
    ngx_msec_t                     start;

    /* NDJSON */
    ngx_chain_t                   *line;      /* being filled */
    ngx_chain_t                   *free;
    ngx_chain_t                   *busy;
    ngx_event_t                    flush;

    unsigned                       pumping:1;
    unsigned                       woken:1;
    unsigned                       waiting:1;
    unsigned                       exhausted:1;
    unsigned                       finished:1;
    unsigned                       stream:1;
    unsigned                       blocked:1;
    unsigned                       error:1;
};


static ngx_int_t ngx_http_mpns_batch_check(ngx_http_request_t *r,
    ngx_http_mpns_batch_t *batch, ngx_http_mpns_error_t *err);
static ngx_int_t ngx_http_mpns_batch_wants_stream(ngx_http_request_t *r);
static void ngx_http_mpns_batch_pump(ngx_http_mpns_batch_t *batch);
static ngx_int_t ngx_http_mpns_batch_next(ngx_http_mpns_batch_t *batch,
    ngx_str_t *channel, ngx_http_mpns_json_tok_t **tok);
static ngx_int_t ngx_http_mpns_batch_send(ngx_http_mpns_batch_t *batch,
    ngx_str_t *channel, ngx_http_mpns_json_tok_t *tok);
static void ngx_http_mpns_batch_job_done(ngx_http_mpns_job_t *job);
static ngx_int_t ngx_http_mpns_batch_record(ngx_http_mpns_batch_t *batch,
    ngx_str_t *channel, ngx_uint_t outcome, ngx_http_mpns_response_t *resp,
    ngx_msec_t elapsed);
static void ngx_http_mpns_batch_wake_next(ngx_http_mpns_engine_t *engine,
    ngx_uint_t limit);
static void ngx_http_mpns_batch_wake_handler(ngx_event_t *ev);
static void ngx_http_mpns_batch_finish(ngx_http_mpns_batch_t *batch);
static u_char *ngx_http_mpns_batch_summary(ngx_http_mpns_batch_t *batch,
    size_t *len);
static ngx_int_t ngx_http_mpns_batch_line(ngx_http_mpns_batch_t *batch,
    ngx_str_t *channel, ngx_uint_t outcome, ngx_http_mpns_response_t *resp,
    ngx_msec_t elapsed);
static ngx_int_t ngx_http_mpns_batch_output(ngx_http_mpns_batch_t *batch,
    ngx_chain_t *cl);
static void ngx_http_mpns_batch_flush_handler(ngx_event_t *ev);
static void ngx_http_mpns_batch_write_handler(ngx_http_request_t *r);
static void ngx_http_mpns_batch_stop(ngx_http_mpns_batch_t *batch);
static void ngx_http_mpns_batch_cleanup(void *data);


static ngx_str_t  ngx_http_mpns_channels_field = ngx_string("channels");
static ngx_str_t  ngx_http_mpns_null = ngx_string("null");


ngx_int_t
ngx_http_mpns_batch_start(ngx_http_request_t *r, ngx_http_mpns_message_t *msg,
    ngx_http_mpns_targets_t *targets, ngx_http_mpns_error_t *err)
{
    ngx_int_t                   rc;
    ngx_uint_t                  n;
    ngx_http_cleanup_t         *cln;
    ngx_http_mpns_ctx_t        *ctx;
    ngx_http_mpns_batch_t      *batch;

    ctx = ngx_http_get_module_ctx(r, ngx_http_mpns_module);

    batch = ngx_pcalloc(r->pool, sizeof(ngx_http_mpns_batch_t));
    if (batch == NULL) {
        return NGX_ERROR;
    }

    batch->request = r;
    batch->ctx = ctx;
    batch->mlcf = ngx_http_get_module_loc_conf(r, ngx_http_mpns_module);
    batch->mmcf = ngx_http_get_module_main_conf(r, ngx_http_mpns_module);
    batch->engine = batch->mmcf->engine;

    /* the caller's message is on its stack */

    batch->msg = ngx_palloc(r->pool, sizeof(ngx_http_mpns_message_t));
    if (batch->msg == NULL) {
        return NGX_ERROR;
    }

    *batch->msg = *msg;

    if (targets->channels) {
        batch->tokens = targets->json.tokens;
        batch->token = targets->channels + 1;
        batch->left = batch->tokens[targets->channels].size;

        /* a mistake anywhere in the list means nothing is sent */

        rc = ngx_http_mpns_batch_check(r, batch, err);
        if (rc != NGX_OK) {
            return rc;
        }

    } else {
        batch->reader = ngx_http_mpns_reader_create(r->pool,
                            ngx_http_mpns_registry_get(batch->mlcf->broadcast),
                            &targets->filter);
        if (batch->reader == NULL) {
            return NGX_ERROR;
        }
    }

    n = ngx_min(batch->mlcf->report_failures, 16);

    if (ngx_array_init(&batch->failures, r->pool, n ? n : 1,
                       sizeof(ngx_http_mpns_failure_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_mpns_batch_cleanup;
    cln->data = batch;

    ngx_queue_init(&batch->jobs);

    batch->wake.handler = ngx_http_mpns_batch_wake_handler;
    batch->wake.data = batch;
    batch->wake.log = r->connection->log;

    batch->flush.handler = ngx_http_mpns_batch_flush_handler;
    batch->flush.data = batch;
    batch->flush.log = r->connection->log;
    batch->flush.cancelable = 1;

    batch->start = ngx_current_msec;

    ctx->batch = batch;
    ctx->message_id = msg->message_id;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "mpns batch of %V, %ui listed",
                   ngx_http_mpns_type_name(msg->type), batch->left);

    /* a client that goes away cancels the batch, see the cleanup */

    r->read_event_handler = ngx_http_test_reading;

    if (ngx_http_mpns_batch_wants_stream(r)) {
        batch->stream = 1;

        r->headers_out.status = NGX_HTTP_OK;
        ngx_str_set(&r->headers_out.content_type, "application/x-ndjson");
        r->headers_out.content_type_len = r->headers_out.content_type.len;
        r->headers_out.content_type_lowcase = NULL;

        rc = ngx_http_send_header(r);

        if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
            ngx_http_mpns_batch_stop(batch);
            ngx_http_finalize_request(r, rc);
            return NGX_OK;
        }
    }

    ngx_http_mpns_batch_pump(batch);

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_batch_check(ngx_http_request_t *r, ngx_http_mpns_batch_t *batch,
    ngx_http_mpns_error_t *err)
{
    ngx_int_t                  rc;
    ngx_str_t                  channel;
    ngx_uint_t                 i, k;
    ngx_pool_t                *pool;
    ngx_http_mpns_target_t     target;
    ngx_http_mpns_json_tok_t  *t;

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, r->connection->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    rc = NGX_OK;
    t = batch->tokens;
    k = batch->token;

    for (i = 0; i < batch->left; i++, k = t[k].next) {

        if (t[k].type != NGX_HTTP_MPNS_JSON_STRING
            || ngx_http_mpns_json_string(pool, &t[k], &channel) != NGX_OK)
        {
            err->status = NGX_HTTP_BAD_REQUEST;
            err->text = "invalid value";
            rc = NGX_DECLINED;
            break;
        }

        rc = ngx_http_mpns_request_channel(r, batch->mlcf, &channel, pool,
                                           NULL, &target, err);
        if (rc != NGX_OK) {
            break;
        }

        ngx_reset_pool(pool);
    }

    ngx_destroy_pool(pool);

    if (rc == NGX_DECLINED) {
        err->field = ngx_http_mpns_channels_field;
    }

    return rc;
}


static ngx_int_t
ngx_http_mpns_batch_wants_stream(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return 0;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("Accept") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Accept",
                               sizeof("Accept") - 1) == 0
            && ngx_strlcasestrn(h[i].value.data,
                                h[i].value.data + h[i].value.len,
                                (u_char *) "application/x-ndjson",
                                sizeof("application/x-ndjson") - 2)
               != NULL)
        {
            return 1;
        }
    }
}


static void
ngx_http_mpns_batch_pump(ngx_http_mpns_batch_t *batch)
{
    ngx_int_t                  rc;
    ngx_str_t                  channel;
    ngx_http_mpns_engine_t    *engine;
    ngx_http_mpns_json_tok_t  *tok;

    if (batch->pumping || batch->finished) {
        return;
    }

    batch->pumping = 1;
    engine = batch->engine;

    if (batch->woken) {
        /* the slot reserved when it was woken */
        engine->busy--;
    }

    while (!batch->exhausted && !batch->blocked
           && batch->active < batch->mlcf->concurrency)
    {
        /*
         * the per-worker cap: a batch that finds it reached, or finds
         * others already waiting for it, queues up behind them
         */

        if (engine->busy >= batch->mmcf->worker_concurrency
            || (!batch->woken && !ngx_queue_empty(&engine->waiting)))
        {
            /* one already woken has a slot coming: its event pumps */

            if (!batch->waiting && !batch->wake.posted) {
                ngx_queue_insert_tail(&engine->waiting, &batch->queue);
                batch->waiting = 1;
            }

            break;
        }

        rc = ngx_http_mpns_batch_next(batch, &channel, &tok);

        if (rc == NGX_DONE) {
            batch->exhausted = 1;
            break;
        }

        if (rc == NGX_OK) {
            rc = ngx_http_mpns_batch_send(batch, &channel, tok);
        }

        if (rc != NGX_OK) {
            batch->error = 1;
            batch->exhausted = 1;
            break;
        }
    }

    batch->pumping = 0;

    if (batch->woken) {
        batch->woken = 0;

        /* slots it did not need go to the next one waiting */

        ngx_http_mpns_batch_wake_next(engine,
                                      batch->mmcf->worker_concurrency);
    }

    if (batch->exhausted && batch->active == 0) {
        ngx_http_mpns_batch_finish(batch);
    }
}


static ngx_int_t
ngx_http_mpns_batch_next(ngx_http_mpns_batch_t *batch, ngx_str_t *channel,
    ngx_http_mpns_json_tok_t **tok)
{
    ngx_uint_t                 refilled;
    ngx_http_mpns_json_tok_t  *t;

    if (batch->tokens) {
        if (batch->left == 0) {
            return NGX_DONE;
        }

        t = &batch->tokens[batch->token];

        batch->token = t->next;
        batch->left--;

        *tok = t;

        return NGX_OK;
    }

    *tok = NULL;

    return ngx_http_mpns_reader_next(batch->reader, channel, &refilled);
}


static ngx_int_t
ngx_http_mpns_batch_send(ngx_http_mpns_batch_t *batch, ngx_str_t *channel,
    ngx_http_mpns_json_tok_t *tok)
{
    time_t                      left;
    ngx_int_t                   rc;
    ngx_uint_t                  outcome;
    ngx_http_request_t         *r;
    ngx_http_mpns_job_t        *job;
    ngx_http_mpns_error_t       err;
    ngx_http_mpns_target_t      target;
    ngx_http_mpns_response_t    resp;
    ngx_http_mpns_loc_conf_t   *mlcf;
    ngx_http_mpns_recipient_t  *rcpt;

    r = batch->request;
    mlcf = batch->mlcf;

    job = ngx_http_mpns_job_create(batch->engine, r->connection->log);
    if (job == NULL) {
        return NGX_ERROR;
    }

    rcpt = ngx_palloc(job->pool, sizeof(ngx_http_mpns_recipient_t));
    if (rcpt == NULL) {
        goto failed;
    }

    rcpt->batch = batch;

    /* the job's strings live in its own pool, not in the request's */

    if (tok) {
        if (ngx_http_mpns_json_string(job->pool, tok, &rcpt->channel)
            != NGX_OK)
        {
            goto failed;
        }

    } else {
        rcpt->channel.len = channel->len;
        rcpt->channel.data = ngx_pstrdup(job->pool, channel);

        if (rcpt->channel.data == NULL) {
            goto failed;
        }
    }

    rc = ngx_http_mpns_request_channel(r, mlcf, &rcpt->channel, job->pool,
                                       job, &target, &err);

    if (rc == NGX_DECLINED) {

        /* a registry entry the configuration no longer allows */

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "mpns broadcast skips \"%V\": %s",
                      &rcpt->channel, err.text);

        rc = ngx_http_mpns_batch_record(batch, &rcpt->channel,
                                        NGX_HTTP_MPNS_REFUSED, NULL, 0);

        ngx_http_mpns_status_result(mlcf->status, batch->msg->type,
                                    NGX_HTTP_MPNS_REFUSED, 0, 0);

        ngx_http_mpns_job_cancel(job);

        return rc;
    }

    if (rc != NGX_OK
        || ngx_http_mpns_message_request(job->pool, batch->msg, &target,
                                         &job->request)
           != NGX_OK)
    {
        goto failed;
    }

    ngx_memzero(&resp, sizeof(ngx_http_mpns_response_t));

    if (ngx_http_mpns_hold_check(&mlcf->hold, &rcpt->channel, &outcome,
                                 &resp.status, &left)
        == NGX_OK)
    {
        /* a 412 or 406 still holding: answered as MPNS answered */

        rc = ngx_http_mpns_batch_record(batch, &rcpt->channel, outcome,
                                        &resp, 0);

        ngx_http_mpns_status_result(mlcf->status, batch->msg->type, outcome,
                                    0, 0);

        ngx_http_mpns_job_cancel(job);

        return rc;
    }

    job->connect_timeout = mlcf->connect_timeout;
    job->send_timeout = mlcf->send_timeout;
    job->read_timeout = mlcf->read_timeout;
    job->retries = mlcf->retries;
    job->retry_timeout = mlcf->retry_timeout;
    job->retry_delay = mlcf->retry_delay;
    job->status = mlcf->status;
    job->handler = ngx_http_mpns_batch_job_done;
    job->data = rcpt;

    ngx_queue_insert_tail(&batch->jobs, &job->queue);
    batch->active++;
    batch->engine->busy++;

    ngx_http_mpns_job_start(job);

    return NGX_OK;

failed:

    ngx_http_mpns_job_cancel(job);

    return NGX_ERROR;
}


static void
ngx_http_mpns_batch_job_done(ngx_http_mpns_job_t *job)
{
    ngx_uint_t                  deleted;
    ngx_connection_t           *c;
    ngx_http_mpns_batch_t      *batch;
    ngx_http_mpns_recipient_t  *rcpt;

    rcpt = job->data;
    batch = rcpt->batch;

    ngx_queue_remove(&job->queue);
    batch->active--;
    batch->engine->busy--;

    ngx_http_mpns_status_result(job->status, batch->msg->type, job->outcome,
                                job->attempts, job->elapsed);

    if (ngx_http_mpns_batch_record(batch, &rcpt->channel, job->outcome,
                                   &job->response, job->elapsed)
        != NGX_OK)
    {
        batch->error = 1;
        batch->exhausted = 1;
    }

    ngx_http_mpns_hold_set(&batch->mlcf->hold, &rcpt->channel, job->outcome,
                           job->response.status,
                           batch->request->connection->log);

    if (job->outcome == NGX_HTTP_MPNS_EXPIRED
        && batch->reader
        && batch->mlcf->remove_expired)
    {
        if (ngx_http_mpns_registry_delete(batch->reader->registry,
                                          NGX_HTTP_MPNS_BY_CHANNEL,
                                          &rcpt->channel, &deleted)
            == NGX_OK)
        {
            batch->removed += deleted;
        }
    }

    ngx_http_mpns_batch_wake_next(batch->engine,
                                  batch->mmcf->worker_concurrency);

    if (batch->pumping) {
        /* completed inside ngx_http_mpns_job_start() */
        return;
    }

    c = batch->request->connection;

    ngx_http_mpns_batch_pump(batch);
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_mpns_batch_record(ngx_http_mpns_batch_t *batch, ngx_str_t *channel,
    ngx_uint_t outcome, ngx_http_mpns_response_t *resp, ngx_msec_t elapsed)
{
    ngx_http_mpns_counts_t   *counts;
    ngx_http_mpns_failure_t  *f;

    counts = &batch->ctx->counts;

    counts->sent++;
    batch->outcomes[outcome]++;

    if (outcome == NGX_HTTP_MPNS_DELIVERED) {
        counts->delivered++;

    } else {
        if (outcome == NGX_HTTP_MPNS_EXPIRED) {
            counts->expired++;

        } else {
            counts->failed++;
        }

        if (batch->failures.nelts < batch->mlcf->report_failures) {
            f = ngx_array_push(&batch->failures);
            if (f == NULL) {
                return NGX_ERROR;
            }

            f->channel.len = channel->len;
            f->channel.data = ngx_pstrdup(batch->request->pool, channel);
            if (f->channel.data == NULL) {
                return NGX_ERROR;
            }

            f->outcome = outcome;
            f->status = resp ? resp->status : 0;

        } else {
            batch->omitted++;
        }
    }

    if (batch->stream) {
        return ngx_http_mpns_batch_line(batch, channel, outcome, resp,
                                        elapsed);
    }

    return NGX_OK;
}


static void
ngx_http_mpns_batch_wake_next(ngx_http_mpns_engine_t *engine, ngx_uint_t limit)
{
    ngx_queue_t            *q;
    ngx_http_mpns_batch_t  *batch;

    if (engine->busy >= limit || ngx_queue_empty(&engine->waiting)) {
        return;
    }

    q = ngx_queue_head(&engine->waiting);
    ngx_queue_remove(q);

    batch = ngx_queue_data(q, ngx_http_mpns_batch_t, queue);
    batch->waiting = 0;

    /* the freed slot is kept for it until its event runs */

    engine->busy++;

    ngx_post_event(&batch->wake, &ngx_posted_events);
}


static void
ngx_http_mpns_batch_wake_handler(ngx_event_t *ev)
{
    ngx_http_mpns_batch_t *batch = ev->data;

    ngx_connection_t  *c;

    c = batch->request->connection;

    batch->woken = 1;

    ngx_http_mpns_batch_pump(batch);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_mpns_batch_finish(ngx_http_mpns_batch_t *batch)
{
    u_char              *p;
    size_t               len;
    ngx_int_t            rc;
    ngx_buf_t           *b;
    ngx_chain_t         *cl;
    ngx_http_request_t  *r;

    r = batch->request;

    ngx_http_mpns_batch_stop(batch);

    batch->ctx->elapsed = ngx_current_msec - batch->start;
    batch->ctx->done = 1;

    if (batch->error) {
        ngx_http_finalize_request(r, batch->stream
                                     ? NGX_ERROR
                                     : NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    p = ngx_http_mpns_batch_summary(batch, &len);
    if (p == NULL) {
        ngx_http_finalize_request(r, batch->stream
                                     ? NGX_ERROR
                                     : NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (!batch->stream) {
        ngx_http_finalize_request(r, ngx_http_mpns_send_json(r, NGX_HTTP_OK,
                                                             p, len));
        return;
    }

    /* the lines still buffered, then the summary as the last line */

    cl = batch->line;

    if (cl == NULL) {
        cl = ngx_alloc_chain_link(r->pool);
        if (cl == NULL) {
            ngx_http_finalize_request(r, NGX_ERROR);
            return;
        }

        cl->buf = NULL;
        cl->next = NULL;

    } else if (cl->buf->last == cl->buf->pos) {
        cl->buf = NULL;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    b->pos = p;
    b->last = p + len;
    b->memory = 1;

    if (cl->buf == NULL) {
        cl->buf = b;

    } else {
        cl->next = ngx_alloc_chain_link(r->pool);
        if (cl->next == NULL) {
            ngx_http_finalize_request(r, NGX_ERROR);
            return;
        }

        cl->next->buf = b;
        cl->next->next = NULL;
    }

    rc = ngx_http_mpns_batch_output(batch, cl);

    ngx_http_finalize_request(r, rc == NGX_OK ? NGX_OK : NGX_ERROR);
}


static u_char *
ngx_http_mpns_batch_summary(ngx_http_mpns_batch_t *batch, size_t *len)
{
    u_char                   *p, *buf;
    size_t                    size;
    ngx_uint_t                i, n;
    ngx_http_mpns_counts_t   *counts;
    ngx_http_mpns_outcome_t  *o;
    ngx_http_mpns_failure_t  *f;

    counts = &batch->ctx->counts;
    f = batch->failures.elts;

    size = sizeof("{\"summary\":}\n") - 1
           + sizeof("{\"sent\":,\"delivered\":,\"expired\":,\"failed\":,"
                    "\"removed\":,\"outcomes\":{},\"failures\":[],"
                    "\"failures_omitted\":,\"message_id\":\"\","
                    "\"time_ms\":}") - 1
           + 7 * NGX_INT_T_LEN + batch->msg->message_id.len;

    for (i = 0; i < NGX_HTTP_MPNS_NOUTCOMES; i++) {
        if (batch->outcomes[i]) {
            size += sizeof("\"\":,") - 1 + NGX_INT_T_LEN
                    + ngx_http_mpns_outcome(i)->name.len;
        }
    }

    for (i = 0; i < batch->failures.nelts; i++) {
        size += sizeof("{\"channel\":,\"outcome\":\"\",\"status\":},") - 1
                + ngx_http_mpns_json_str_len(&f[i].channel)
                + ngx_http_mpns_outcome(f[i].outcome)->name.len
                + NGX_INT_T_LEN;
    }

    buf = ngx_pnalloc(batch->request->pool, size);
    if (buf == NULL) {
        return NULL;
    }

    p = buf;

    if (batch->stream) {
        p = ngx_cpymem(p, "{\"summary\":", sizeof("{\"summary\":") - 1);
    }

    p = ngx_sprintf(p, "{\"sent\":%ui,\"delivered\":%ui,\"expired\":%ui,"
                       "\"failed\":%ui,\"removed\":%ui,\"outcomes\":{",
                    counts->sent, counts->delivered, counts->expired,
                    counts->failed, batch->removed);

    for (i = 0, n = 0; i < NGX_HTTP_MPNS_NOUTCOMES; i++) {
        if (batch->outcomes[i] == 0) {
            continue;
        }

        o = ngx_http_mpns_outcome(i);

        if (n++) {
            *p++ = ',';
        }

        *p++ = '"';
        p = ngx_cpymem(p, o->name.data, o->name.len);
        p = ngx_sprintf(p, "\":%ui", batch->outcomes[i]);
    }

    p = ngx_cpymem(p, "},\"failures\":[", sizeof("},\"failures\":[") - 1);

    for (i = 0; i < batch->failures.nelts; i++) {
        o = ngx_http_mpns_outcome(f[i].outcome);

        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, "{\"channel\":", sizeof("{\"channel\":") - 1);
        p = ngx_http_mpns_json_str(p, &f[i].channel);
        p = ngx_cpymem(p, ",\"outcome\":\"", sizeof(",\"outcome\":\"") - 1);
        p = ngx_cpymem(p, o->name.data, o->name.len);
        p = ngx_cpymem(p, "\",\"status\":", sizeof("\",\"status\":") - 1);
        p = f[i].status ? ngx_sprintf(p, "%ui", f[i].status)
                        : ngx_cpymem(p, ngx_http_mpns_null.data,
                                     ngx_http_mpns_null.len);
        *p++ = '}';
    }

    p = ngx_sprintf(p, "],\"failures_omitted\":%ui,\"message_id\":\"%V\","
                       "\"time_ms\":%M}",
                    batch->omitted, &batch->msg->message_id,
                    batch->ctx->elapsed);

    if (batch->stream) {
        *p++ = '}';
    }

    *p++ = LF;

    if ((size_t) (p - buf) > size) {
        ngx_log_error(NGX_LOG_ALERT, batch->request->connection->log, 0,
                      "mpns batch summary: buffer overflow");
        return NULL;
    }

    *len = p - buf;

    return buf;
}


static ngx_int_t
ngx_http_mpns_batch_line(ngx_http_mpns_batch_t *batch, ngx_str_t *channel,
    ngx_uint_t outcome, ngx_http_mpns_response_t *resp, ngx_msec_t elapsed)
{
    u_char                   *p;
    size_t                    size;
    ngx_str_t                *s;
    ngx_buf_t                *b;
    ngx_uint_t                i;
    ngx_chain_t              *cl;
    ngx_http_mpns_outcome_t  *o;

    static char  *keys[] = {
        ",\"notification_status\":",
        ",\"subscription_status\":",
        ",\"device_connection_status\":"
    };

    o = ngx_http_mpns_outcome(outcome);

    size = sizeof("{\"channel\":,\"status\":,\"outcome\":\"\",\"time_ms\":}\n")
           - 1
           + ngx_http_mpns_json_str_len(channel) + NGX_INT_T_LEN
           + o->name.len + NGX_INT_T_LEN;

    for (i = 0; i < 3; i++) {
        s = resp ? &resp->notification_status + i : &ngx_http_mpns_null;
        size += ngx_strlen(keys[i])
                + (s->len ? ngx_http_mpns_json_str_len(s)
                          : ngx_http_mpns_null.len);
    }

    cl = batch->line;

    if (cl && (size_t) (cl->buf->end - cl->buf->last) < size) {
        if (ngx_http_mpns_batch_output(batch, cl) != NGX_OK) {
            return NGX_ERROR;
        }

        cl = NULL;
    }

    if (cl == NULL) {
        cl = ngx_chain_get_free_buf(batch->request->pool, &batch->free);
        if (cl == NULL) {
            return NGX_ERROR;
        }

        b = cl->buf;

        /* a line is far shorter than the buffer: channels are <= 1 KB */

        if (b->start == NULL) {
            b->start = ngx_palloc(batch->request->pool,
                                  NGX_HTTP_MPNS_LINE_SIZE);
            if (b->start == NULL) {
                return NGX_ERROR;
            }

            b->end = b->start + NGX_HTTP_MPNS_LINE_SIZE;
            b->temporary = 1;
            b->tag = (ngx_buf_tag_t) &ngx_http_mpns_module;
        }

        b->pos = b->start;
        b->last = b->start;

        batch->line = cl;
    }

    b = cl->buf;

    p = ngx_cpymem(b->last, "{\"channel\":", sizeof("{\"channel\":") - 1);
    p = ngx_http_mpns_json_str(p, channel);

    p = ngx_cpymem(p, ",\"status\":", sizeof(",\"status\":") - 1);
    p = (resp && resp->status) ? ngx_sprintf(p, "%ui", resp->status)
                               : ngx_cpymem(p, ngx_http_mpns_null.data,
                                            ngx_http_mpns_null.len);

    p = ngx_cpymem(p, ",\"outcome\":\"", sizeof(",\"outcome\":\"") - 1);
    p = ngx_cpymem(p, o->name.data, o->name.len);
    *p++ = '"';

    for (i = 0; i < 3; i++) {
        s = resp ? &resp->notification_status + i : &ngx_http_mpns_null;

        p = ngx_cpymem(p, keys[i], ngx_strlen(keys[i]));
        p = (resp && s->len) ? ngx_http_mpns_json_str(p, s)
                             : ngx_cpymem(p, ngx_http_mpns_null.data,
                                          ngx_http_mpns_null.len);
    }

    p = ngx_sprintf(p, ",\"time_ms\":%M}", elapsed);
    *p++ = LF;

    b->last = p;

    if (!batch->flush.timer_set) {
        ngx_add_timer(&batch->flush, NGX_HTTP_MPNS_FLUSH_DELAY);
    }

    return NGX_OK;
}


/* sends "b" and everything before it; b is the line buffer or the summary */

static ngx_int_t
ngx_http_mpns_batch_output(ngx_http_mpns_batch_t *batch, ngx_chain_t *cl)
{
    ngx_int_t                  rc;
    ngx_buf_t                 *b;
    ngx_chain_t               *last;
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_core_loc_conf_t  *clcf;

    r = batch->request;
    c = r->connection;

    if (cl == batch->line) {
        batch->line = NULL;
    }

    for (last = cl; last->next; last = last->next) { /* void */ }

    b = last->buf;
    b->flush = 1;

    if (batch->finished) {
        b->last_buf = 1;
        b->last_in_chain = 1;
    }

    rc = ngx_http_output_filter(r, cl);

    ngx_chain_update_chains(r->pool, &batch->free, &batch->busy, &cl,
                            (ngx_buf_tag_t) &ngx_http_mpns_module);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (batch->finished) {
        return NGX_OK;
    }

    /* a slow client: no new sends until what was written has gone out */

    if (c->buffered & NGX_HTTP_WRITE_BUFFERED) {
        batch->blocked = 1;
        r->write_event_handler = ngx_http_mpns_batch_write_handler;

        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

        if (!c->write->ready && !c->write->timer_set) {
            ngx_add_timer(c->write, clcf->send_timeout);
        }

        if (ngx_handle_write_event(c->write, clcf->send_lowat) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_http_mpns_batch_flush_handler(ngx_event_t *ev)
{
    ngx_http_mpns_batch_t *batch = ev->data;

    ngx_connection_t  *c;

    c = batch->request->connection;

    if (batch->line == NULL || batch->line->buf->last == batch->line->buf->pos)
    {
        return;
    }

    if (ngx_http_mpns_batch_output(batch, batch->line) != NGX_OK) {
        ngx_http_finalize_request(batch->request, NGX_ERROR);
    }

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_mpns_batch_write_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_event_t               *wev;
    ngx_connection_t          *c;
    ngx_http_mpns_ctx_t       *ctx;
    ngx_http_mpns_batch_t     *batch;
    ngx_http_core_loc_conf_t  *clcf;

    c = r->connection;
    wev = c->write;
    ctx = ngx_http_get_module_ctx(r, ngx_http_mpns_module);
    batch = ctx->batch;

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "client timed out");
        c->timedout = 1;
        ngx_http_finalize_request(r, NGX_HTTP_REQUEST_TIME_OUT);
        return;
    }

    rc = ngx_http_output_filter(r, NULL);

    ngx_chain_update_chains(r->pool, &batch->free, &batch->busy, NULL,
                            (ngx_buf_tag_t) &ngx_http_mpns_module);

    if (rc == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (c->buffered & NGX_HTTP_WRITE_BUFFERED) {
        if (!wev->delayed && !wev->timer_set) {
            ngx_add_timer(wev, clcf->send_timeout);
        }

        if (ngx_handle_write_event(wev, clcf->send_lowat) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_ERROR);
        }

        return;
    }

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    r->write_event_handler = ngx_http_request_empty_handler;
    batch->blocked = 0;

    ngx_http_mpns_batch_pump(batch);
}


/* the batch sends nothing more: out of queues, timers and posted events */

static void
ngx_http_mpns_batch_stop(ngx_http_mpns_batch_t *batch)
{
    batch->finished = 1;

    if (batch->waiting) {
        ngx_queue_remove(&batch->queue);
        batch->waiting = 0;
    }

    if (batch->wake.posted) {
        ngx_delete_posted_event(&batch->wake);
        batch->engine->busy--;
    }

    if (batch->flush.timer_set) {
        ngx_del_timer(&batch->flush);
    }

    ngx_http_mpns_batch_wake_next(batch->engine,
                                  batch->mmcf->worker_concurrency);
}


static void
ngx_http_mpns_batch_cleanup(void *data)
{
    ngx_http_mpns_batch_t *batch = data;

    ngx_queue_t          *q;
    ngx_http_mpns_job_t  *job;

    if (batch->finished) {
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, batch->request->connection->log, 0,
                   "mpns batch cancelled, %ui sent, %ui in flight",
                   batch->ctx->counts.sent, batch->active);

    while (!ngx_queue_empty(&batch->jobs)) {
        q = ngx_queue_head(&batch->jobs);
        ngx_queue_remove(q);

        job = ngx_queue_data(q, ngx_http_mpns_job_t, queue);
        ngx_http_mpns_job_cancel(job);

        batch->engine->busy--;
    }

    batch->active = 0;

    /* the access log gets what was done so far */

    batch->ctx->elapsed = ngx_current_msec - batch->start;
    batch->ctx->done = 1;

    ngx_http_mpns_batch_stop(batch);
}
