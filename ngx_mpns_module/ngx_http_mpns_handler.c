
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_mpns_module.h"


/*
 * mpns_send and mpns_broadcast locations: the request's body and
 * arguments to a message, then sent now (ngx_http_mpns_send_start()) or
 * put into the outbox.
 */


static void ngx_http_mpns_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_mpns_background(ngx_http_request_t *r,
    ngx_http_mpns_message_t *msg, ngx_http_mpns_targets_t *targets,
    ngx_http_mpns_error_t *err);
static void ngx_http_mpns_background_added(ngx_http_mpns_store_op_t *op);
static ngx_int_t ngx_http_mpns_background_answer(ngx_http_request_t *r,
    ngx_http_mpns_ctx_t *ctx);
static ngx_int_t ngx_http_mpns_tile_payload(ngx_http_mpns_message_t *msg,
    ngx_str_t *channel, ngx_pool_t *pool, ngx_log_t *log,
    ngx_http_mpns_message_t *own, ngx_http_mpns_error_t *err);
static ngx_int_t ngx_http_mpns_recurring(ngx_http_request_t *r,
    ngx_http_mpns_targets_t *targets, ngx_msec_t due,
    ngx_http_mpns_recur_t *recur, ngx_http_mpns_error_t *err);
static ngx_int_t ngx_http_mpns_refuse(ngx_http_mpns_error_t *err,
    char *text, char *field);
static ngx_int_t ngx_http_mpns_parse_rfc3339(ngx_str_t *s, ngx_msec_t *ms);


static ngx_str_t  ngx_http_mpns_allow = ngx_string("GET, POST");
static ngx_str_t  ngx_http_mpns_allow_id = ngx_string("GET, DELETE");
static ngx_str_t  ngx_http_mpns_method_field = ngx_string("method");
static ngx_str_t  ngx_http_mpns_body_field = ngx_string("body");
static ngx_str_t  ngx_http_mpns_channel_field = ngx_string("channel");
static ngx_str_t  ngx_http_mpns_count_field = ngx_string("count");


ngx_int_t
ngx_http_mpns_send_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_str_t                  id;
    ngx_http_mpns_ctx_t       *ctx;
    ngx_http_mpns_error_t      err;
    ngx_http_mpns_loc_conf_t  *mlcf;
    ngx_http_core_loc_conf_t  *clcf;

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_mpns_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_mpns_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_set_ctx(r, ctx, ngx_http_mpns_module);

    /* <location>/<id>: a background send */

    ngx_str_null(&id);

    if (mlcf->outbox.zone) {
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

        if (r->uri.len > clcf->name.len) {
            id.data = r->uri.data + clcf->name.len;
            id.len = r->uri.len - clcf->name.len;

            if (id.data[0] == '/') {
                id.data++;
                id.len--;
            }
        }
    }

    err.status = 0;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_POST))
        && !(id.len && (r->method & NGX_HTTP_DELETE)))
    {
        err.status = NGX_HTTP_NOT_ALLOWED;
        err.text = "method not allowed";
        err.field = ngx_http_mpns_method_field;

    } else if (r->headers_in.content_length_n > (off_t) mlcf->max_body_size)
    {
        err.status = NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
        err.text = "request body too large";
        err.field = ngx_http_mpns_body_field;
    }

    if (err.status) {
        rc = ngx_http_discard_request_body(r);

        if (rc != NGX_OK) {
            return rc;
        }

        if (err.status == NGX_HTTP_NOT_ALLOWED) {
            if (ngx_http_mpns_add_header(r, "Allow",
                                         id.len ? &ngx_http_mpns_allow_id
                                                : &ngx_http_mpns_allow)
                != NGX_OK)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }

        return ngx_http_mpns_send_error(r, &err);
    }

    /*
     * GET <location>/<id>: a background send's state, DELETE cancels it;
     * GET <location>/recurring lists the recurring sends
     */

    if (id.len && (r->method & (NGX_HTTP_GET|NGX_HTTP_DELETE))) {
        rc = ngx_http_discard_request_body(r);

        if (rc != NGX_OK) {
            return rc;
        }

        if (r->method & NGX_HTTP_DELETE) {
            return ngx_http_mpns_background_cancel(r, &id);
        }

        if (id.len == sizeof("recurring") - 1
            && ngx_strncmp(id.data, "recurring", id.len) == 0)
        {
            return ngx_http_mpns_background_list(r);
        }

        return ngx_http_mpns_background_status(r, &id);
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_mpns_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_mpns_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                   rc, type;
    ngx_str_t                  *channel, *v;
    ngx_http_mpns_ctx_t        *ctx;
    ngx_http_mpns_spec_t        spec;
    ngx_http_mpns_error_t       err;
    ngx_http_mpns_message_t     msg;
    ngx_http_mpns_targets_t     targets;
    ngx_http_mpns_loc_conf_t   *mlcf;
    ngx_http_mpns_main_conf_t  *mmcf;

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_mpns_module);
    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mpns_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_mpns_module);

    ngx_memzero(&targets, sizeof(ngx_http_mpns_targets_t));
    targets.broadcast = (mlcf->broadcast != NULL);

    rc = ngx_http_mpns_request_spec(r, mlcf, &spec, &targets, &err);

    if (rc == NGX_DECLINED) {
        goto mistake;
    }

    if (rc != NGX_OK) {
        goto failed;
    }

    channel = &spec.values[NGX_HTTP_MPNS_F_CHANNEL];

    if (channel->data == NULL && !targets.broadcast && !targets.channels) {
        err.status = NGX_HTTP_BAD_REQUEST;
        err.text = "missing field";
        err.field = ngx_http_mpns_channel_field;
        goto mistake;
    }

    ctx->channel = *channel;

    v = &spec.values[NGX_HTTP_MPNS_F_TYPE];
    type = v->data ? mlcf->service->type(v) : NGX_ERROR;

    if (mlcf->tiles && mlcf->counter && type != NGX_ERROR
        && (type & NGX_HTTP_MPNS_ANY_TILE))
    {
        /* the count is the recipient's, written in by the job step */

        if (spec.values[NGX_HTTP_MPNS_F_COUNT].data
            || (spec.clear & ((uint64_t) 1 << NGX_HTTP_MPNS_F_COUNT)))
        {
            err.status = NGX_HTTP_BAD_REQUEST;
            err.text = "count is kept by mpns_counter";
            err.field = ngx_http_mpns_count_field;
            goto mistake;
        }

        ngx_str_set(&spec.values[NGX_HTTP_MPNS_F_COUNT], "0");
    }

    if (spec.values[NGX_HTTP_MPNS_F_MESSAGE_ID].data == NULL) {
        spec.random = ngx_http_mpns_engine_random(mmcf->engine);
    }

    rc = mlcf->service->build(r->pool, &spec, mlcf->max_payload_size, &msg,
                              &err);

    if (rc == NGX_DECLINED) {
        goto mistake;
    }

    if (rc != NGX_OK) {
        goto failed;
    }

    ctx->type = msg.type;

    rc = ngx_http_mpns_tile_messages(r, &msg);

    if (rc != NGX_OK) {
        goto failed;
    }

    rc = ngx_http_mpns_background(r, &msg, &targets, &err);

    if (rc != NGX_DECLINED) {
        if (rc == NGX_OK) {
            return;
        }

        if (rc == NGX_BUSY) {
            goto mistake;
        }

        goto failed;
    }

    rc = ngx_http_mpns_send_start(r, &msg, &targets, &err);

    if (rc == NGX_DECLINED) {
        goto mistake;
    }

    if (rc != NGX_OK) {
        goto failed;
    }

    return;

mistake:

    ngx_http_finalize_request(r, ngx_http_mpns_send_error(r, &err));
    return;

failed:

    ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
}


/*
 * A send that goes into the outbox: NGX_OK once answered (202),
 * NGX_DECLINED to send now, NGX_BUSY for a mistake in "err" (the caller
 * answers it), NGX_ERROR.
 */

static ngx_int_t
ngx_http_mpns_background(ngx_http_request_t *r, ngx_http_mpns_message_t *msg,
    ngx_http_mpns_targets_t *targets, ngx_http_mpns_error_t *err)
{
    ngx_int_t                   rc, n;
    ngx_msec_t                  now, due;
    ngx_uint_t                  background, scheduled;
    ngx_http_mpns_ctx_t        *ctx;
    ngx_http_mpns_recur_t       recur;
    ngx_http_mpns_target_t      target;
    ngx_http_mpns_loc_conf_t   *mlcf;

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_mpns_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_mpns_module);

    background = (mlcf->outbox.mode == NGX_HTTP_MPNS_MODE_BACKGROUND);

    if (targets->async.len) {
        if (!mlcf->outbox.async && !background) {
            return ngx_http_mpns_refuse(err, "async is not allowed here",
                                        "async");
        }

        if (targets->async.len == 4
            && ngx_strncmp(targets->async.data, "true", 4) == 0)
        {
            background = 1;

        } else if (targets->async.len == 5
                   && ngx_strncmp(targets->async.data, "false", 5) == 0)
        {
            background = 0;

        } else {
            return ngx_http_mpns_refuse(err, "invalid value", "async");
        }
    }

    now = ngx_http_mpns_outbox_now();
    due = now;

    if (targets->delay.len) {
        n = ngx_atoi(targets->delay.data, targets->delay.len);

        if (n == NGX_ERROR || n > 30 * 86400) {
            return ngx_http_mpns_refuse(err, "invalid value", "delay");
        }

        due = now + (ngx_msec_t) n * 1000;
    }

    if (targets->send_at.len) {
        if (targets->delay.len) {
            return ngx_http_mpns_refuse(err, "both send_at and delay given",
                                        "send_at");
        }

        if (ngx_http_mpns_parse_rfc3339(&targets->send_at, &due) != NGX_OK)
        {
            return ngx_http_mpns_refuse(err, "invalid value", "send_at");
        }
    }

    rc = ngx_http_mpns_recurring(r, targets, due, &recur, err);

    if (rc != NGX_OK) {
        return rc;
    }

    scheduled = (targets->delay.len || targets->send_at.len || recur.every);

    if (scheduled && mlcf->outbox.zone
        && (mlcf->outbox.async
            || mlcf->outbox.mode == NGX_HTTP_MPNS_MODE_BACKGROUND))
    {
        /* a scheduled send goes through the outbox */
        background = 1;
    }

    if (!background) {
        if (recur.every) {
            return ngx_http_mpns_refuse(err,
                                        "recurring sends are sent in the "
                                        "background", "every");
        }

        if (scheduled) {
            return ngx_http_mpns_refuse(err,
                                        "scheduled sends are sent in the "
                                        "background", targets->delay.len
                                                      ? "delay" : "send_at");
        }

        return NGX_DECLINED;
    }

    if (targets->channels) {
        return ngx_http_mpns_refuse(err, "lists are sent in wait mode",
                                    "channels");
    }

    if (msg->single) {
        return ngx_http_mpns_refuse(err,
                                    "a callback is registered in wait mode",
                                    "type");
    }

    if (msg->payload || msg->follow) {
        return ngx_http_mpns_refuse(err,
                                    "tiles of a registry are sent in wait "
                                    "mode", "type");
    }

    if (targets->broadcast) {
        ngx_str_null(&ctx->channel);
        goto add;
    }

    if (ctx->channel.data == NULL) {
        return ngx_http_mpns_refuse(err, "missing field", "channel");
    }

    rc = ngx_http_mpns_request_channel(r, mlcf, &ctx->channel, r->pool, NULL,
                                       &target, err);
    if (rc == NGX_DECLINED) {
        return NGX_BUSY;
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

add:

    ctx->message_id = msg->message_id;
    ctx->due_in = (due > now) ? due - now : 0;

    ctx->op.handler = ngx_http_mpns_background_added;
    ctx->op.data = r;
    ctx->op.log = r->connection->log;

    rc = ngx_http_mpns_outbox_add(mlcf->outbox.zone, msg, &ctx->channel,
                                  targets->broadcast ? &targets->filter
                                                     : NULL,
                                  recur.every ? &recur : NULL, due, ctx->id,
                                  &ctx->op);

    if (rc == NGX_AGAIN) {
        /* answered once the outbox has it: the body's reference waits */
        return NGX_OK;
    }

    if (rc == NGX_BUSY) {
        err->status = NGX_HTTP_INSUFFICIENT_STORAGE;
        err->text = "outbox is full";
        ngx_str_set(&err->field, "channel");
        return NGX_BUSY;
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_finalize_request(r, ngx_http_mpns_background_answer(r, ctx));

    return NGX_OK;
}


/* an outbox that took the send later: the answer, or the mistake */

static void
ngx_http_mpns_background_added(ngx_http_mpns_store_op_t *op)
{
    ngx_http_request_t *r = op->data;

    ngx_int_t              rc;
    ngx_connection_t      *c;
    ngx_http_mpns_ctx_t   *ctx;
    ngx_http_mpns_error_t  err;

    ctx = ngx_http_get_module_ctx(r, ngx_http_mpns_module);

    if (op->rc == NGX_OK) {
        rc = ngx_http_mpns_background_answer(r, ctx);

    } else if (op->rc == NGX_BUSY) {
        err.status = NGX_HTTP_INSUFFICIENT_STORAGE;
        err.text = "outbox is full";
        ngx_str_set(&err.field, "channel");
        rc = ngx_http_mpns_send_error(r, &err);

    } else {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the request may be gone once finalized */
    c = r->connection;

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* 202: the id to ask about, and when it is due */

static ngx_int_t
ngx_http_mpns_background_answer(ngx_http_request_t *r,
    ngx_http_mpns_ctx_t *ctx)
{
    u_char  *p, *buf;

    buf = ngx_pnalloc(r->pool, sizeof("{\"id\":\"\",\"state\":\"pending\","
                                      "\"message_id\":\"\",\"due_in_ms\":}\n")
                               + NGX_HTTP_MPNS_ID_LEN + 36 + NGX_TIME_T_LEN);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(buf, "{\"id\":\"%*s\",\"state\":\"pending\","
                         "\"message_id\":\"%V\",\"due_in_ms\":%M}\n",
                    (size_t) NGX_HTTP_MPNS_ID_LEN, ctx->id, &ctx->message_id,
                    ctx->due_in);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "mpns background send %*s", (size_t) NGX_HTTP_MPNS_ID_LEN,
                   ctx->id);

    return ngx_http_mpns_send_json(r, NGX_HTTP_ACCEPTED, buf, p - buf);
}


/*
 * A tile of mpns_counter or mpns_last_tile: each recipient's from the
 * registry; with mpns_pin_request, the raw notification that follows a
 * tile the device did not show.
 */

ngx_int_t
ngx_http_mpns_tile_messages(ngx_http_request_t *r,
    ngx_http_mpns_message_t *msg)
{
    ngx_int_t                   rc;
    ngx_http_mpns_spec_t        spec;
    ngx_http_mpns_error_t       err;
    ngx_http_mpns_loc_conf_t   *mlcf;
    ngx_http_mpns_main_conf_t  *mmcf;

    if (!(msg->type & NGX_HTTP_MPNS_ANY_TILE)) {
        return NGX_OK;
    }

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_mpns_module);

    if (mlcf->tiles) {
        msg->payload = ngx_http_mpns_tile_payload;
        msg->data = mlcf;
    }

    if (mlcf->pin.len == 0) {
        return NGX_OK;
    }

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mpns_module);

    ngx_memzero(&spec, sizeof(ngx_http_mpns_spec_t));

    ngx_str_set(&spec.values[NGX_HTTP_MPNS_F_TYPE], "raw");
    spec.values[NGX_HTTP_MPNS_F_PAYLOAD] = mlcf->pin;
    spec.random = ngx_http_mpns_engine_random(mmcf->engine);

    msg->follow = ngx_palloc(r->pool, sizeof(ngx_http_mpns_message_t));
    if (msg->follow == NULL) {
        return NGX_ERROR;
    }

    rc = mlcf->service->build(r->pool, &spec, NGX_HTTP_MPNS_MAX_TILE,
                              msg->follow, &err);

    return (rc == NGX_OK) ? NGX_OK : NGX_ERROR;
}


/* see ngx_http_mpns_payload_pt */

static ngx_int_t
ngx_http_mpns_tile_payload(ngx_http_mpns_message_t *msg, ngx_str_t *channel,
    ngx_pool_t *pool, ngx_log_t *log, ngx_http_mpns_message_t *own,
    ngx_http_mpns_error_t *err)
{
    ngx_int_t                  rc;
    ngx_uint_t                 counted;
    ngx_http_mpns_loc_conf_t  *mlcf;

    mlcf = msg->data;

    *own = *msg;
    own->payload = NULL;

    own->body.data = ngx_pnalloc(pool, msg->body.len + 2);
    if (own->body.data == NULL) {
        return NGX_ERROR;
    }

    counted = mlcf->counter && msg->count_len;

    rc = ngx_http_mpns_registry_tile(ngx_http_mpns_registry_get(mlcf->tiles),
                                     channel, msg, counted, &own->body, log);

    switch (rc) {

    case NGX_OK:
        return NGX_OK;

    case NGX_DECLINED:

        if (!counted) {
            /* a channel not registered has no tile to remember */
            own->body = msg->body;
            return NGX_OK;
        }

        err->status = NGX_HTTP_NOT_FOUND;
        err->text = "not registered";
        break;

    case NGX_BUSY:
        err->status = NGX_HTTP_INSUFFICIENT_STORAGE;
        err->text = "registry is full";
        break;

    default:
        return NGX_ERROR;
    }

    err->field = ngx_http_mpns_channel_field;

    return NGX_DECLINED;
}


/*
 * "every", "times" and "until" of a recurring send whose first time is
 * "due": NGX_OK (recur->every 0: no such send), NGX_BUSY for a mistake
 */

static ngx_int_t
ngx_http_mpns_recurring(ngx_http_request_t *r,
    ngx_http_mpns_targets_t *targets, ngx_msec_t due,
    ngx_http_mpns_recur_t *recur, ngx_http_mpns_error_t *err)
{
    ngx_int_t                  n;
    ngx_msec_t                 until;
    ngx_http_mpns_loc_conf_t  *mlcf;

    ngx_memzero(recur, sizeof(ngx_http_mpns_recur_t));

    if (targets->every.len == 0) {
        if (targets->times.len || targets->until.len) {
            return ngx_http_mpns_refuse(err, "missing field", "every");
        }

        return NGX_OK;
    }

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_mpns_module);

    /* seconds, or "90s", "15m", "1h", "1d" */

    n = ngx_parse_time(&targets->every, 1);

    if (n == NGX_ERROR || n > 30 * 86400) {
        return ngx_http_mpns_refuse(err, "invalid value", "every");
    }

    if ((ngx_msec_t) n * 1000 < mlcf->outbox.min_interval) {
        return ngx_http_mpns_refuse(err, "interval too short", "every");
    }

    recur->every = (ngx_msec_t) n * 1000;

    if (targets->times.len) {
        n = ngx_atoi(targets->times.data, targets->times.len);

        if (n == NGX_ERROR || n < 1 || n > 1000000) {
            return ngx_http_mpns_refuse(err, "invalid value", "times");
        }

        recur->times = n;
    }

    if (targets->until.len) {
        if (ngx_http_mpns_parse_rfc3339(&targets->until, &until) != NGX_OK) {
            return ngx_http_mpns_refuse(err, "invalid value", "until");
        }

        if (until <= ngx_http_mpns_outbox_now()) {
            return ngx_http_mpns_refuse(err, "until is in the past",
                                        "until");
        }

        if (until < due) {
            return ngx_http_mpns_refuse(err, "until is before the first "
                                        "send", "until");
        }

        recur->until = until;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_refuse(ngx_http_mpns_error_t *err, char *text, char *field)
{
    err->status = NGX_HTTP_BAD_REQUEST;
    err->text = text;
    err->field.data = (u_char *) field;
    err->field.len = ngx_strlen(field);

    return NGX_BUSY;
}


/* "2026-11-23T10:00:00Z", "2026-11-23T11:00:00.5+01:00" */

static ngx_int_t
ngx_http_mpns_parse_rfc3339(ngx_str_t *s, ngx_msec_t *ms)
{
    u_char      *p, *last;
    ngx_int_t    v[6], sign, tz, i, n, y, m, days;
    ngx_msec_t   frac;

    static ngx_uint_t  widths[] = { 4, 2, 2, 2, 2, 2 };
    static u_char      seps[] = { '-', '-', 'T', ':', ':', 0 };
    static u_char      mdays[] = { 31, 28, 31, 30, 31, 30,
                                   31, 31, 30, 31, 30, 31 };

    p = s->data;
    last = p + s->len;

    for (i = 0; i < 6; i++) {
        if ((size_t) (last - p) < widths[i]) {
            return NGX_ERROR;
        }

        v[i] = ngx_atoi(p, widths[i]);

        if (v[i] == NGX_ERROR) {
            return NGX_ERROR;
        }

        p += widths[i];

        if (seps[i]) {
            if (p == last || (*p != seps[i] && !(i == 2 && *p == 't'))) {
                return NGX_ERROR;
            }

            p++;
        }
    }

    if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23
        || v[4] > 59 || v[5] > 60)
    {
        return NGX_ERROR;
    }

    /* February 29 in leap years only */

    if (v[2] > mdays[v[1] - 1]
               + (v[1] == 2 && v[0] % 4 == 0
                  && (v[0] % 100 != 0 || v[0] % 400 == 0)))
    {
        return NGX_ERROR;
    }

    frac = 0;

    if (p < last && *p == '.') {
        for (p++, n = 0; p < last && *p >= '0' && *p <= '9'; p++, n++) {
            if (n < 3) {
                frac = frac * 10 + (*p - '0');
            }
        }

        if (n == 0) {
            return NGX_ERROR;
        }

        for ( /* void */ ; n < 3; n++) {
            frac *= 10;
        }
    }

    if (p < last && (*p == 'Z' || *p == 'z') && p + 1 == last) {
        tz = 0;

    } else if (last - p == 6 && (*p == '+' || *p == '-') && p[3] == ':') {
        sign = (*p == '-') ? -1 : 1;
        n = ngx_atoi(p + 1, 2);
        m = ngx_atoi(p + 4, 2);

        if (n == NGX_ERROR || m == NGX_ERROR || n > 23 || m > 59) {
            return NGX_ERROR;
        }

        tz = sign * (n * 3600 + m * 60);

    } else {
        return NGX_ERROR;
    }

    /* days since the epoch of a proleptic Gregorian date */

    y = v[0] - (v[1] <= 2);
    m = v[1] <= 2 ? v[1] + 9 : v[1] - 3;

    days = 365 * y + y / 4 - y / 100 + y / 400 + (153 * m + 2) / 5 + v[2]
           - 719469;

    n = days * 86400 + v[3] * 3600 + v[4] * 60 + v[5] - tz;

    if (n < 0) {
        return NGX_ERROR;
    }

    *ms = (ngx_msec_t) n * 1000 + frac;

    return NGX_OK;
}
