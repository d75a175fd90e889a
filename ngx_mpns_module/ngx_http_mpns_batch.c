
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_mpns_module.h"


/*
 * The request's side of a fan-out: where its recipients come from (the
 * "channel", a "channels" list, the registry) and what its results
 * become (one send's answer, or a summary, or a line per recipient).
 */


#define NGX_HTTP_MPNS_LINE_SIZE         4096   /* one NDJSON output buffer */
#define NGX_HTTP_MPNS_FLUSH_DELAY       100


typedef struct {
    ngx_str_t                      channel;
    ngx_uint_t                     outcome;
    ngx_uint_t                     status;
} ngx_http_mpns_failure_t;


struct ngx_http_mpns_batch_s {
    ngx_http_request_t            *request;
    ngx_http_mpns_ctx_t           *ctx;
    ngx_http_mpns_message_t       *msg;

    /* recipients: the tokens of a JSON array ... */
    ngx_http_mpns_json_tok_t      *tokens;
    ngx_uint_t                     token;
    ngx_uint_t                     left;

    /* ... or the registry */
    ngx_http_mpns_reader_t        *reader;

    ngx_uint_t                     outcomes[NGX_HTTP_MPNS_NOUTCOMES];
    ngx_uint_t                     removed;
    ngx_uint_t                     pins;      /* mpns_pin_request sends */
    ngx_array_t                    failures;  /* ngx_http_mpns_failure_t */
    ngx_uint_t                     omitted;
    ngx_msec_t                     start;

    /* NDJSON */
    ngx_chain_t                   *line;      /* being filled */
    ngx_chain_t                   *free;
    ngx_chain_t                   *busy;
    ngx_event_t                    flush;

    unsigned                       stream:1;
};


static ngx_int_t ngx_http_mpns_single_next(ngx_http_mpns_fanout_t *fo,
    ngx_str_t *channel);
static ngx_int_t ngx_http_mpns_single_record(ngx_http_mpns_fanout_t *fo,
    ngx_http_mpns_result_t *res);
static void ngx_http_mpns_single_done(ngx_http_mpns_fanout_t *fo);
static ngx_int_t ngx_http_mpns_single_answer(ngx_http_request_t *r,
    ngx_http_mpns_ctx_t *ctx);
static ngx_int_t ngx_http_mpns_batch_check(ngx_http_request_t *r,
    ngx_http_mpns_batch_t *batch, ngx_http_mpns_error_t *err);
static ngx_int_t ngx_http_mpns_batch_wants_stream(ngx_http_request_t *r);
static ngx_int_t ngx_http_mpns_batch_next(ngx_http_mpns_fanout_t *fo,
    ngx_str_t *channel);
static ngx_int_t ngx_http_mpns_batch_record(ngx_http_mpns_fanout_t *fo,
    ngx_http_mpns_result_t *res);
static void ngx_http_mpns_batch_finish(ngx_http_mpns_fanout_t *fo);
static u_char *ngx_http_mpns_batch_summary(ngx_http_mpns_batch_t *batch,
    size_t *len);
static ngx_int_t ngx_http_mpns_batch_line(ngx_http_mpns_batch_t *batch,
    ngx_http_mpns_result_t *res);
static ngx_int_t ngx_http_mpns_batch_output(ngx_http_mpns_batch_t *batch,
    ngx_chain_t *cl);
static void ngx_http_mpns_batch_flush_handler(ngx_event_t *ev);
static void ngx_http_mpns_batch_write_handler(ngx_http_request_t *r);
static void ngx_http_mpns_send_cleanup(void *data);


static ngx_str_t  ngx_http_mpns_channels_field = ngx_string("channels");
static ngx_str_t  ngx_http_mpns_null = ngx_string("null");


/*
 * Sends "msg" from a request: to the "channel" (a fan-out of one), to a
 * "channels" list or to the registry.  NGX_OK once under way, NGX_DECLINED
 * for a mistake in "err", NGX_ERROR.
 */

ngx_int_t
ngx_http_mpns_send_start(ngx_http_request_t *r, ngx_http_mpns_message_t *msg,
    ngx_http_mpns_targets_t *targets, ngx_http_mpns_error_t *err)
{
    ngx_int_t                   rc;
    ngx_uint_t                  n;
    ngx_http_cleanup_t         *cln;
    ngx_http_mpns_ctx_t        *ctx;
    ngx_http_mpns_batch_t      *batch;
    ngx_http_mpns_fanout_t     *fo;
    ngx_http_mpns_loc_conf_t   *mlcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_mpns_module);
    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_mpns_module);

    fo = &ctx->fanout;

    fo->conf = mlcf;
    fo->clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
    fo->log = r->connection->log;
    fo->request = r;
    fo->retries = mlcf->retries;
    fo->data = r;

    /* the caller's message is on its stack */

    fo->msg = ngx_palloc(r->pool, sizeof(ngx_http_mpns_message_t));
    if (fo->msg == NULL) {
        return NGX_ERROR;
    }

    *fo->msg = *msg;

    ctx->message_id = fo->msg->message_id;

    if (ngx_http_mpns_fanout_init(fo) != NGX_OK) {
        return NGX_ERROR;
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_mpns_send_cleanup;
    cln->data = r;

    /* a client that goes away cancels the sends, see the cleanup */

    r->read_event_handler = ngx_http_test_reading;

    if (!targets->broadcast && !targets->channels) {
        fo->concurrency = 1;
        fo->next = ngx_http_mpns_single_next;
        fo->record = ngx_http_mpns_single_record;
        fo->done = ngx_http_mpns_single_done;

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "mpns send %V to \"%V\"",
                       mlcf->service->type_name(msg->type), &ctx->channel);

        ngx_http_mpns_fanout_pump(fo);

        return NGX_OK;
    }

    if (msg->single) {
        err->status = NGX_HTTP_BAD_REQUEST;
        err->text = "a callback is registered for one channel";
        ngx_str_set(&err->field, "type");
        return NGX_DECLINED;
    }

    batch = ngx_pcalloc(r->pool, sizeof(ngx_http_mpns_batch_t));
    if (batch == NULL) {
        return NGX_ERROR;
    }

    batch->request = r;
    batch->ctx = ctx;
    batch->msg = fo->msg;

    fo->concurrency = mlcf->concurrency;
    fo->rate = mlcf->rate;
    fo->next = ngx_http_mpns_batch_next;
    fo->record = ngx_http_mpns_batch_record;
    fo->done = ngx_http_mpns_batch_finish;
    fo->data = batch;

    if (targets->channels) {
        batch->tokens = targets->json.tokens;
        batch->token = targets->channels + 1;
        batch->left = batch->tokens[targets->channels].size;

        /* expired channels of a list are not the registry's business */
        fo->registry = NULL;

        /* a mistake anywhere in the list means nothing is sent */

        rc = ngx_http_mpns_batch_check(r, batch, err);
        if (rc != NGX_OK) {
            fo->finished = 1;
            return rc;
        }

    } else {
        batch->reader = ngx_http_mpns_reader_create(r->pool,
                                ngx_http_mpns_registry_get(mlcf->broadcast),
                                &targets->filter);
        if (batch->reader == NULL) {
            return NGX_ERROR;
        }

        batch->reader->op.handler = ngx_http_mpns_fanout_resume;
        batch->reader->op.data = fo;
        batch->reader->op.log = r->connection->log;
    }

    n = ngx_min(mlcf->report_failures, 16);

    if (ngx_array_init(&batch->failures, r->pool, n ? n : 1,
                       sizeof(ngx_http_mpns_failure_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    batch->flush.handler = ngx_http_mpns_batch_flush_handler;
    batch->flush.data = batch;
    batch->flush.log = r->connection->log;
    batch->flush.cancelable = 1;

    batch->start = ngx_current_msec;

    ctx->batch = batch;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "mpns batch of %V, %ui listed",
                   mlcf->service->type_name(msg->type), batch->left);

    if (ngx_http_mpns_batch_wants_stream(r)) {
        batch->stream = 1;

        r->headers_out.status = NGX_HTTP_OK;
        ngx_str_set(&r->headers_out.content_type, "application/x-ndjson");
        r->headers_out.content_type_len = r->headers_out.content_type.len;
        r->headers_out.content_type_lowcase = NULL;

        rc = ngx_http_send_header(r);

        if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
            ngx_http_mpns_fanout_cancel(fo);
            ngx_http_finalize_request(r, rc);
            return NGX_OK;
        }
    }

    ngx_http_mpns_fanout_pump(fo);

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_single_next(ngx_http_mpns_fanout_t *fo, ngx_str_t *channel)
{
    ngx_http_request_t   *r;
    ngx_http_mpns_ctx_t  *ctx;

    r = fo->request;
    ctx = ngx_http_get_module_ctx(r, ngx_http_mpns_module);

    if (ctx->counts.sent || ctx->mistake) {
        return NGX_DONE;
    }

    *channel = ctx->channel;

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_single_record(ngx_http_mpns_fanout_t *fo,
    ngx_http_mpns_result_t *res)
{
    ngx_uint_t                 i;
    ngx_http_request_t        *r;
    ngx_http_mpns_ctx_t       *ctx;
    ngx_http_mpns_response_t  *dst;

    r = fo->request;
    ctx = ngx_http_get_module_ctx(r, ngx_http_mpns_module);

    if (res->pin) {
        ctx->pin_outcome = res->outcome;
        ctx->pin_status = res->response ? res->response->status : 0;
        ctx->pin_sent = 1;
        return NGX_OK;
    }

    if (res->error) {

        /* the caller's mistake: answered as one, nothing was sent */

        ctx->mistake = ngx_palloc(r->pool, sizeof(ngx_http_mpns_error_t));
        if (ctx->mistake == NULL) {
            return NGX_ERROR;
        }

        *ctx->mistake = *res->error;

        return NGX_OK;
    }

    /* the job's pool goes away after this */

    dst = &ctx->response;

    if (res->response) {
        dst->status = res->response->status;

        for (i = 0; i < NGX_HTTP_MPNS_MAX_HEADERS; i++) {
            if (ngx_http_mpns_copy(r->pool, &dst->headers[i],
                                   &res->response->headers[i])
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }
    }

    ctx->outcome = res->outcome;
    ctx->attempts = res->attempts;
    ctx->elapsed = res->elapsed;
    ctx->retry_after = res->retry_after;

    ctx->counts.sent = 1;

    if (res->outcome == NGX_HTTP_MPNS_DELIVERED) {
        ctx->counts.delivered = 1;

    } else if (res->outcome == NGX_HTTP_MPNS_EXPIRED) {
        ctx->counts.expired = 1;

    } else {
        ctx->counts.failed = 1;
    }

    return NGX_OK;
}


static void
ngx_http_mpns_single_done(ngx_http_mpns_fanout_t *fo)
{
    ngx_int_t             rc;
    ngx_http_request_t   *r;
    ngx_http_mpns_ctx_t  *ctx;

    r = fo->request;
    ctx = ngx_http_get_module_ctx(r, ngx_http_mpns_module);

    ctx->done = 1;

    if (fo->error) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;

    } else if (ctx->mistake) {
        rc = ngx_http_mpns_send_error(r, ctx->mistake);

    } else {
        rc = ngx_http_mpns_single_answer(r, ctx);
    }

    ngx_http_finalize_request(r, rc);
}


/* MPNS's status and headers, and the outcome as JSON */

static ngx_int_t
ngx_http_mpns_single_answer(ngx_http_request_t *r, ngx_http_mpns_ctx_t *ctx)
{
    u_char                    *p, *buf;
    size_t                     len;
    time_t                     retry_after;
    ngx_str_t                 *s;
    ngx_uint_t                 i, status;
    ngx_http_mpns_header_t    *h;
    ngx_http_mpns_service_t   *service;
    ngx_http_mpns_outcome_t   *outcome;
    ngx_http_mpns_response_t  *resp;

    resp = &ctx->response;
    outcome = ngx_http_mpns_outcome(ctx->outcome);
    service = ctx->fanout.conf->service;
    h = service->headers;

    if (resp->status) {
        status = resp->status;

    } else if (ctx->outcome == NGX_HTTP_MPNS_TIMEOUT) {
        status = NGX_HTTP_GATEWAY_TIME_OUT;

    } else if (ctx->outcome == NGX_HTTP_MPNS_REFUSED) {
        status = NGX_HTTP_FORBIDDEN;

    } else {
        status = NGX_HTTP_BAD_GATEWAY;
    }

    /* the message id, outcome and action need no escaping */

    /*
     * JSON strings are sized for the worst case, every byte escaped as
     * "\u00XX": one pass over them instead of two
     */

    len = sizeof("{\"channel\":,\"status\":,\"message_id\":\"\","
                 "\"outcome\":\"\",\"action\":\"\",\"retry_after\":,"
                 "\"attempts\":,\"time_ms\":}\n") - 1
          + 2 + 6 * ctx->channel.len
          + NGX_INT_T_LEN
          + ctx->message_id.len + outcome->name.len + outcome->action.len
          + NGX_TIME_T_LEN + NGX_INT_T_LEN + NGX_INT_T_LEN
          + NGX_HTTP_MPNS_JSON_SENT_LEN;

    for (i = 0; i < service->nheaders; i++) {
        s = &resp->headers[i];

        if (ngx_http_mpns_add_header(r, (char *) h[i].header.data, s)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (h[i].key.len) {
            len += sizeof(",\"\":") - 1 + h[i].key.len
                   + ngx_max(2 + 6 * s->len, ngx_http_mpns_null.len);
        }
    }

    buf = ngx_pnalloc(r->pool, len);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(buf, "{\"channel\":", sizeof("{\"channel\":") - 1);
    p = ngx_http_mpns_json_str(p, &ctx->channel);

    p = ngx_cpymem(p, ",\"status\":", sizeof(",\"status\":") - 1);
    p = resp->status ? ngx_http_mpns_uint(p, resp->status)
                     : ngx_cpymem(p, ngx_http_mpns_null.data,
                                  ngx_http_mpns_null.len);

    for (i = 0; i < service->nheaders; i++) {
        if (h[i].key.len == 0) {
            continue;
        }

        s = &resp->headers[i];

        *p++ = ','; *p++ = '"';
        p = ngx_cpymem(p, h[i].key.data, h[i].key.len);
        *p++ = '"'; *p++ = ':';
        p = s->len ? ngx_http_mpns_json_str(p, s)
                   : ngx_cpymem(p, ngx_http_mpns_null.data,
                                ngx_http_mpns_null.len);
    }

    p = ngx_cpymem(p, ",\"message_id\":\"", sizeof(",\"message_id\":\"") - 1);
    p = ngx_cpymem(p, ctx->message_id.data, ctx->message_id.len);

    p = ngx_cpymem(p, "\",\"outcome\":\"", sizeof("\",\"outcome\":\"") - 1);
    p = ngx_cpymem(p, outcome->name.data, outcome->name.len);

    p = ngx_cpymem(p, "\",\"action\":\"", sizeof("\",\"action\":\"") - 1);
    p = ngx_cpymem(p, outcome->action.data, outcome->action.len);
    *p++ = '"';

    p = ngx_cpymem(p, ",\"retry_after\":", sizeof(",\"retry_after\":") - 1);
    retry_after = ctx->retry_after ? ctx->retry_after : outcome->retry_after;

    p = retry_after ? ngx_sprintf(p, "%T", retry_after)
                    : ngx_cpymem(p, ngx_http_mpns_null.data,
                                 ngx_http_mpns_null.len);

    p = ngx_cpymem(p, ",\"attempts\":", sizeof(",\"attempts\":") - 1);
    p = ngx_http_mpns_uint(p, ctx->attempts);
    p = ngx_cpymem(p, ",\"time_ms\":", sizeof(",\"time_ms\":") - 1);
    p = ngx_http_mpns_uint(p, ctx->elapsed);

    if (ctx->pin_sent) {
        outcome = ngx_http_mpns_outcome(ctx->pin_outcome);
        p = ngx_http_mpns_json_sent(p, "pin_send", &outcome->name,
                                    ctx->pin_status);
    }

    *p++ = '}'; *p++ = LF;

    if ((size_t) (p - buf) > len) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "mpns result: buffer overflow");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_mpns_send_json(r, status, buf, p - buf);
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

        rc = ngx_http_mpns_request_channel(r, batch->ctx->fanout.conf,
                                           &channel, pool, NULL, &target,
                                           err);
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


static ngx_int_t
ngx_http_mpns_batch_next(ngx_http_mpns_fanout_t *fo, ngx_str_t *channel)
{
    ngx_uint_t                 refilled;
    ngx_http_mpns_batch_t     *batch;
    ngx_http_mpns_json_tok_t  *t;

    batch = fo->data;

    if (batch->reader) {
        return ngx_http_mpns_reader_next(batch->reader, channel, &refilled);
    }

    if (batch->left == 0) {
        return NGX_DONE;
    }

    t = &batch->tokens[batch->token];

    batch->token = t->next;
    batch->left--;

    /* a copy in the request's pool, checked when the request came */

    return ngx_http_mpns_json_string(batch->request->pool, t, channel);
}


static ngx_int_t
ngx_http_mpns_batch_record(ngx_http_mpns_fanout_t *fo,
    ngx_http_mpns_result_t *res)
{
    ngx_http_mpns_batch_t    *batch;
    ngx_http_mpns_counts_t   *counts;
    ngx_http_mpns_failure_t  *f;

    batch = fo->data;
    counts = &batch->ctx->counts;

    if (res->pin) {
        /* the raw notification after a tile, not another recipient */
        batch->pins++;
        return NGX_OK;
    }

    counts->sent++;
    batch->outcomes[res->outcome]++;
    batch->removed += res->removed;

    if (res->outcome == NGX_HTTP_MPNS_DELIVERED) {
        counts->delivered++;

    } else {
        if (res->outcome == NGX_HTTP_MPNS_EXPIRED) {
            counts->expired++;

        } else {
            counts->failed++;
        }

        if (batch->failures.nelts < fo->conf->report_failures) {
            f = ngx_array_push(&batch->failures);
            if (f == NULL) {
                return NGX_ERROR;
            }

            f->channel.len = res->channel.len;
            f->channel.data = ngx_pstrdup(batch->request->pool,
                                          &res->channel);
            if (f->channel.data == NULL) {
                return NGX_ERROR;
            }

            f->outcome = res->outcome;
            f->status = res->response ? res->response->status : 0;

        } else {
            batch->omitted++;
        }
    }

    if (batch->stream) {
        return ngx_http_mpns_batch_line(batch, res);
    }

    return NGX_OK;
}


static void
ngx_http_mpns_batch_finish(ngx_http_mpns_fanout_t *fo)
{
    u_char              *p;
    size_t               len;
    ngx_int_t            rc;
    ngx_buf_t           *b;
    ngx_chain_t         *cl;
    ngx_http_request_t  *r;
    ngx_http_mpns_batch_t  *batch;

    batch = fo->data;
    r = batch->request;

    if (batch->flush.timer_set) {
        ngx_del_timer(&batch->flush);
    }

    batch->ctx->elapsed = ngx_current_msec - batch->start;
    batch->ctx->done = 1;

    if (fo->error) {
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
           + 7 * NGX_INT_T_LEN + batch->msg->message_id.len
           + sizeof(",\"pin_sends\":") - 1 + NGX_INT_T_LEN;

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

    p = ngx_sprintf(p, "],\"failures_omitted\":%ui", batch->omitted);

    if (batch->msg->follow) {
        p = ngx_sprintf(p, ",\"pin_sends\":%ui", batch->pins);
    }

    p = ngx_sprintf(p, ",\"message_id\":\"%V\",\"time_ms\":%M}",
                    &batch->msg->message_id, batch->ctx->elapsed);

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
ngx_http_mpns_batch_line(ngx_http_mpns_batch_t *batch,
    ngx_http_mpns_result_t *res)
{
    u_char                    *p;
    size_t                     size;
    ngx_str_t                 *s;
    ngx_buf_t                 *b;
    ngx_uint_t                 i;
    ngx_chain_t               *cl;
    ngx_http_mpns_header_t    *h;
    ngx_http_mpns_service_t   *service;
    ngx_http_mpns_outcome_t   *o;
    ngx_http_mpns_response_t  *resp;

    o = ngx_http_mpns_outcome(res->outcome);
    resp = res->response;
    service = batch->ctx->fanout.conf->service;
    h = service->headers;

    size = sizeof("{\"channel\":,\"status\":,\"outcome\":\"\",\"time_ms\":}\n")
           - 1
           + ngx_http_mpns_json_str_len(&res->channel) + NGX_INT_T_LEN
           + o->name.len + NGX_INT_T_LEN
           + sizeof(",\"removed\":true") - 1;

    for (i = 0; i < service->nheaders; i++) {
        if (h[i].key.len) {
            s = resp ? &resp->headers[i] : &ngx_http_mpns_null;
            size += sizeof(",\"\":") - 1 + h[i].key.len
                    + (s->len ? ngx_http_mpns_json_str_len(s)
                              : ngx_http_mpns_null.len);
        }
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
    p = ngx_http_mpns_json_str(p, &res->channel);

    p = ngx_cpymem(p, ",\"status\":", sizeof(",\"status\":") - 1);
    p = (resp && resp->status) ? ngx_sprintf(p, "%ui", resp->status)
                               : ngx_cpymem(p, ngx_http_mpns_null.data,
                                            ngx_http_mpns_null.len);

    p = ngx_cpymem(p, ",\"outcome\":\"", sizeof(",\"outcome\":\"") - 1);
    p = ngx_cpymem(p, o->name.data, o->name.len);
    *p++ = '"';

    for (i = 0; i < service->nheaders; i++) {
        if (h[i].key.len == 0) {
            continue;
        }

        s = resp ? &resp->headers[i] : &ngx_http_mpns_null;

        *p++ = ','; *p++ = '"';
        p = ngx_cpymem(p, h[i].key.data, h[i].key.len);
        *p++ = '"'; *p++ = ':';
        p = (resp && s->len) ? ngx_http_mpns_json_str(p, s)
                             : ngx_cpymem(p, ngx_http_mpns_null.data,
                                          ngx_http_mpns_null.len);
    }

    if (res->removed) {
        /* out of the registry: the application's list may follow */
        p = ngx_cpymem(p, ",\"removed\":true",
                       sizeof(",\"removed\":true") - 1);
    }

    p = ngx_sprintf(p, ",\"time_ms\":%M}", res->elapsed);
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

    if (batch->ctx->fanout.finished) {
        b->last_buf = 1;
        b->last_in_chain = 1;
    }

    rc = ngx_http_output_filter(r, cl);

    ngx_chain_update_chains(r->pool, &batch->free, &batch->busy, &cl,
                            (ngx_buf_tag_t) &ngx_http_mpns_module);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (batch->ctx->fanout.finished) {
        return NGX_OK;
    }

    /* a slow client: no new sends until what was written has gone out */

    if (c->buffered & NGX_HTTP_WRITE_BUFFERED) {
        batch->ctx->fanout.blocked = 1;
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
    batch->ctx->fanout.blocked = 0;

    ngx_http_mpns_fanout_pump(&batch->ctx->fanout);
}


/* the client went away: what is in flight is cancelled */

static void
ngx_http_mpns_send_cleanup(void *data)
{
    ngx_http_request_t *r = data;

    ngx_http_mpns_ctx_t    *ctx;
    ngx_http_mpns_batch_t  *batch;

    ctx = ngx_http_get_module_ctx(r, ngx_http_mpns_module);

    if (ctx == NULL || ctx->fanout.finished) {
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "mpns sends cancelled, %ui sent, %ui in flight",
                   ctx->counts.sent, ctx->fanout.active);

    ngx_http_mpns_fanout_cancel(&ctx->fanout);

    batch = ctx->batch;

    if (batch) {
        if (batch->flush.timer_set) {
            ngx_del_timer(&batch->flush);
        }

        /* the access log gets what was done so far */
        ctx->elapsed = ngx_current_msec - batch->start;
        ctx->done = 1;
    }
}
