
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_mpns_module.h"
#include "ngx_http_mpns_json.h"


#define NGX_HTTP_MPNS_LIMIT             100
#define NGX_HTTP_MPNS_MAX_LIMIT         1000
#define NGX_HTTP_MPNS_LIST_BUF          16384


/* what became of a send of mpns_register_tile */
typedef struct {
    ngx_uint_t                     outcome;
    ngx_uint_t                     status;    /* MPNS's, 0: none */
    unsigned                       sent:1;
} ngx_http_mpns_sent_t;


/* a registration or a removal, until the registry has made it */
typedef struct {
    ngx_http_mpns_store_op_t       op;
    ngx_http_mpns_entry_t          entry;
    ngx_str_t                      replaced;
    ngx_uint_t                     by;
    ngx_str_t                      value;
    ngx_uint_t                     deleted;

    /* mpns_register_tile: a fan-out of one to the channel registered */
    ngx_http_mpns_fanout_t         fanout;
    ngx_http_mpns_sent_t           tile;
    ngx_http_mpns_sent_t           pin;

    unsigned                       deleting:1;
    unsigned                       sending:1;
} ngx_http_mpns_change_t;


/* a listing being rendered into a chain of buffers */
typedef struct {
    ngx_pool_t                    *pool;
    ngx_chain_t                   *out;
    ngx_chain_t                  **last;
    ngx_buf_t                     *buf;
    size_t                         len;
    ngx_uint_t                     taken;
    ngx_log_t                     *log;
} ngx_http_mpns_list_t;


static void ngx_http_mpns_channels_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_mpns_channels_post(ngx_http_request_t *r,
    ngx_http_mpns_loc_conf_t *mlcf, ngx_str_t *body,
    ngx_http_mpns_error_t *err);
static ngx_int_t ngx_http_mpns_channels_delete(ngx_http_request_t *r,
    ngx_http_mpns_loc_conf_t *mlcf, ngx_str_t *body,
    ngx_http_mpns_error_t *err);
static ngx_int_t ngx_http_mpns_channels_stored(ngx_http_request_t *r,
    ngx_http_mpns_change_t *chg);
static ngx_int_t ngx_http_mpns_channels_tile(ngx_http_request_t *r,
    ngx_http_mpns_change_t *chg);
static ngx_int_t ngx_http_mpns_channels_tile_next(ngx_http_mpns_fanout_t *fo,
    ngx_str_t *channel);
static ngx_int_t ngx_http_mpns_channels_tile_record(
    ngx_http_mpns_fanout_t *fo, ngx_http_mpns_result_t *res);
static void ngx_http_mpns_channels_tile_done(ngx_http_mpns_fanout_t *fo);
static void ngx_http_mpns_channels_cleanup(void *data);
static ngx_int_t ngx_http_mpns_channels_deleted(ngx_http_request_t *r,
    ngx_http_mpns_change_t *chg);
static void ngx_http_mpns_channels_changed(ngx_http_mpns_store_op_t *op);
static ngx_int_t ngx_http_mpns_channels_selector(ngx_http_request_t *r,
    ngx_str_t *body, ngx_uint_t *by, ngx_str_t *value,
    ngx_http_mpns_error_t *err);
static ngx_int_t ngx_http_mpns_channels_list(ngx_http_request_t *r,
    ngx_http_mpns_loc_conf_t *mlcf, ngx_http_mpns_error_t *err);
static ngx_int_t ngx_http_mpns_channels_take(ngx_http_mpns_entry_t *entry,
    void *data);
static u_char *ngx_http_mpns_channels_room(ngx_http_mpns_list_t *list,
    size_t len);
static ngx_int_t ngx_http_mpns_channels_arg(ngx_http_request_t *r,
    ngx_str_t *name, ngx_str_t *value);
static ngx_int_t ngx_http_mpns_channels_send(ngx_http_request_t *r,
    ngx_uint_t status, ngx_chain_t *out, size_t len);
static ngx_int_t ngx_http_mpns_channels_mistake(ngx_http_mpns_error_t *err,
    ngx_uint_t status, const char *text, ngx_str_t *field);


static ngx_str_t  ngx_http_mpns_channels_allow =
    ngx_string("GET, POST, DELETE");
static ngx_str_t  ngx_http_mpns_channels_method = ngx_string("method");
static ngx_str_t  ngx_http_mpns_channels_body_field = ngx_string("body");
static ngx_str_t  ngx_http_mpns_channels_limit = ngx_string("limit");
static ngx_str_t  ngx_http_mpns_channels_after = ngx_string("after");


/* indexed by NGX_HTTP_MPNS_BY_* */
static ngx_str_t  ngx_http_mpns_channels_selectors[] = {
    ngx_string("channel"),
    ngx_string("device"),
    ngx_string("user")
};


ngx_int_t
ngx_http_mpns_registry_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_http_mpns_error_t      err;
    ngx_http_mpns_loc_conf_t  *mlcf;

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_mpns_module);

    err.status = 0;

    if (!(r->method
          & (NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_POST|NGX_HTTP_DELETE)))
    {
        err.status = NGX_HTTP_NOT_ALLOWED;
        err.text = "method not allowed";
        err.field = ngx_http_mpns_channels_method;

    } else if (r->headers_in.content_length_n > (off_t) mlcf->max_body_size)
    {
        err.status = NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
        err.text = "request body too large";
        err.field = ngx_http_mpns_channels_body_field;
    }

    if (err.status || (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        rc = ngx_http_discard_request_body(r);

        if (rc != NGX_OK) {
            return rc;
        }
    }

    if (err.status) {
        if (err.status == NGX_HTTP_NOT_ALLOWED
            && ngx_http_mpns_add_header(r, "Allow",
                                        &ngx_http_mpns_channels_allow)
               != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_mpns_send_error(r, &err);
    }

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
        rc = ngx_http_mpns_channels_list(r, mlcf, &err);

        if (rc == NGX_DECLINED) {
            return ngx_http_mpns_send_error(r, &err);
        }

        return rc;
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_mpns_channels_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_mpns_channels_body(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_str_t                  body;
    ngx_http_mpns_error_t      err;
    ngx_http_mpns_loc_conf_t  *mlcf;

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_mpns_module);

    rc = ngx_http_mpns_request_body(r, mlcf->max_body_size, &body);

    if (rc == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (rc == NGX_DECLINED) {
        /* a chunked body is measured only now */
        rc = ngx_http_mpns_channels_mistake(&err,
                                        NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                        "request body too large",
                                        &ngx_http_mpns_channels_body_field);

    } else if (r->method == NGX_HTTP_POST) {
        rc = ngx_http_mpns_channels_post(r, mlcf, &body, &err);

    } else {
        rc = ngx_http_mpns_channels_delete(r, mlcf, &body, &err);
    }

    if (rc == NGX_DECLINED) {
        rc = ngx_http_mpns_send_error(r, &err);
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_mpns_channels_post(ngx_http_request_t *r,
    ngx_http_mpns_loc_conf_t *mlcf, ngx_str_t *body,
    ngx_http_mpns_error_t *err)
{
    ngx_int_t                  rc;
    ngx_http_mpns_entry_t      entry;
    ngx_http_mpns_change_t    *chg;
    ngx_http_mpns_target_t     target;
    ngx_http_mpns_registry_t  *reg;

    if (!ngx_http_mpns_request_is_type(r->headers_in.content_type,
                                       "application/json",
                                       sizeof("application/json") - 1))
    {
        return ngx_http_mpns_channels_mistake(err,
                                        NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                        "unsupported content type",
                                        &ngx_http_mpns_channels_body_field);
    }

    rc = ngx_http_mpns_registry_parse(r->pool, body, 0, &entry, err);

    if (rc != NGX_OK) {
        return (rc == NGX_DECLINED) ? rc : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* a channel that could not be sent to is not registered either */

    rc = ngx_http_mpns_request_channel(r, mlcf, &entry.channel, r->pool,
                                       NULL, &target, err);

    if (rc != NGX_OK) {
        return (rc == NGX_DECLINED) ? rc : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    chg = ngx_pcalloc(r->pool, sizeof(ngx_http_mpns_change_t));
    if (chg == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    chg->entry = entry;

    chg->replaced.data = ngx_pnalloc(r->pool, NGX_HTTP_MPNS_MAX_CHANNEL);
    if (chg->replaced.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    chg->op.handler = ngx_http_mpns_channels_changed;
    chg->op.data = r;
    chg->op.log = r->connection->log;

    reg = ngx_http_mpns_registry_get(mlcf->registry);

    r->main->count++;

    chg->op.rc = ngx_http_mpns_registry_set(reg, &chg->entry, &chg->replaced,
                                            r->connection->log, &chg->op);

    if (chg->op.rc == NGX_AGAIN) {
        /* answered once the registry has it */
        return NGX_DONE;
    }

    r->main->count--;

    return ngx_http_mpns_channels_stored(r, chg);
}


/* the answer to a registration, once the registry has it or not */

static ngx_int_t
ngx_http_mpns_channels_stored(ngx_http_request_t *r,
    ngx_http_mpns_change_t *chg)
{
    u_char                 *p, *buf;
    size_t                  len;
    ngx_int_t               rc;
    ngx_str_t               replaced, *outcome;
    ngx_http_mpns_error_t   err;
    ngx_http_mpns_entry_t  *entry;

    rc = chg->op.rc;
    entry = &chg->entry;
    replaced = chg->replaced;

    if (rc == NGX_BUSY) {
        (void) ngx_http_mpns_channels_mistake(&err,
                                        NGX_HTTP_INSUFFICIENT_STORAGE,
                                        "registry is full",
                                        &ngx_http_mpns_channels_selectors[0]);
        return ngx_http_mpns_send_error(r, &err);
    }

    if (rc != NGX_OK && rc != NGX_DONE) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!chg->sending) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "mpns registry %s \"%V\"",
                       (rc == NGX_OK) ? "added" : "updated", &entry->channel);

        switch (ngx_http_mpns_channels_tile(r, chg)) {

        case NGX_OK:
            break;

        case NGX_DONE:
            return NGX_DONE;

        default:
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    len = ngx_http_mpns_registry_json_len(entry) + 1
          + 2 * NGX_HTTP_MPNS_JSON_SENT_LEN;

    if (replaced.len) {
        len += sizeof(",\"replaced\":") - 1
               + ngx_http_mpns_json_str_len(&replaced);
    }

    buf = ngx_pnalloc(r->pool, len);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_http_mpns_registry_json(buf, entry);

    if (replaced.len) {
        p--;    /* "}" */
        p = ngx_cpymem(p, ",\"replaced\":", sizeof(",\"replaced\":") - 1);
        p = ngx_http_mpns_json_str(p, &replaced);
        *p++ = '}';
    }

    if (chg->tile.sent) {
        p--;
        outcome = &ngx_http_mpns_outcome(chg->tile.outcome)->name;
        p = ngx_http_mpns_json_sent(p, "tile_send", outcome,
                                    chg->tile.status);

        if (chg->pin.sent) {
            outcome = &ngx_http_mpns_outcome(chg->pin.outcome)->name;
            p = ngx_http_mpns_json_sent(p, "pin_send", outcome,
                                        chg->pin.status);
        }

        *p++ = '}';
    }

    *p++ = LF;

    if ((size_t) (p - buf) > len) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "mpns registry answer: buffer overflow");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_mpns_send_json(r, (rc == NGX_OK) ? NGX_HTTP_CREATED
                                                     : NGX_HTTP_OK,
                                   buf, p - buf);
}


/*
 * mpns_register_tile: the app runs, so its tile is cleared (a counter
 * back to 0) or sent again.  NGX_OK: nothing to send, NGX_DONE: under way.
 */

static ngx_int_t
ngx_http_mpns_channels_tile(ngx_http_request_t *r, ngx_http_mpns_change_t *chg)
{
    ngx_str_t                   tile;
    ngx_http_cleanup_t         *cln;
    ngx_http_mpns_spec_t        spec;
    ngx_http_mpns_error_t       err;
    ngx_http_mpns_fanout_t     *fo;
    ngx_http_mpns_message_t    *msg;
    ngx_http_mpns_loc_conf_t   *mlcf;
    ngx_http_mpns_main_conf_t  *mmcf;

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_mpns_module);
    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mpns_module);

    switch (mlcf->register_tile) {

    case NGX_HTTP_MPNS_REGISTER_CLEAR:

        if (chg->entry.previous == 0) {
            return NGX_OK;
        }

        ngx_str_null(&tile);
        break;

    case NGX_HTTP_MPNS_REGISTER_REPLAY:

        if (ngx_http_mpns_registry_last_tile(
                ngx_http_mpns_registry_get(mlcf->registry),
                &chg->entry.channel, r->pool, &tile)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (tile.len == 0) {
            return NGX_OK;
        }

        break;

    default: /* NGX_HTTP_MPNS_REGISTER_OFF */
        return NGX_OK;
    }

    /* a tile whose count is cleared; the service says how it is sent */

    ngx_memzero(&spec, sizeof(ngx_http_mpns_spec_t));

    ngx_str_set(&spec.values[NGX_HTTP_MPNS_F_TYPE], "tile");
    spec.clear = (uint64_t) 1 << NGX_HTTP_MPNS_F_COUNT;
    spec.random = ngx_http_mpns_engine_random(mmcf->engine);

    msg = ngx_palloc(r->pool, sizeof(ngx_http_mpns_message_t));
    if (msg == NULL) {
        return NGX_ERROR;
    }

    if (mlcf->service->build(r->pool, &spec, mlcf->max_payload_size, msg,
                             &err)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (tile.len) {
        msg->body = tile;
    }

    if (ngx_http_mpns_tile_messages(r, msg) != NGX_OK) {
        return NGX_ERROR;
    }

    /* a registration's tile is not a tile sent: nothing is counted */
    msg->payload = NULL;

    fo = &chg->fanout;

    fo->conf = mlcf;
    fo->clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
    fo->msg = msg;
    fo->log = r->connection->log;
    fo->request = r;
    fo->concurrency = 1;
    fo->retries = mlcf->retries;
    fo->next = ngx_http_mpns_channels_tile_next;
    fo->record = ngx_http_mpns_channels_tile_record;
    fo->done = ngx_http_mpns_channels_tile_done;
    fo->data = chg;

    if (ngx_http_mpns_fanout_init(fo) != NGX_OK) {
        return NGX_ERROR;
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_mpns_channels_cleanup;
    cln->data = chg;

    chg->sending = 1;

    /* answered once sent, the caller's finalization is balanced */
    r->main->count++;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "mpns registry %s tile to \"%V\"",
                   tile.len ? "sends the last" : "clears the",
                   &chg->entry.channel);

    ngx_http_mpns_fanout_pump(fo);

    return NGX_DONE;
}


static ngx_int_t
ngx_http_mpns_channels_tile_next(ngx_http_mpns_fanout_t *fo,
    ngx_str_t *channel)
{
    ngx_http_mpns_change_t *chg = fo->data;

    if (fo->started) {
        return NGX_DONE;
    }

    *channel = chg->entry.channel;

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_channels_tile_record(ngx_http_mpns_fanout_t *fo,
    ngx_http_mpns_result_t *res)
{
    ngx_http_mpns_change_t *chg = fo->data;

    ngx_http_mpns_sent_t  *sent;

    sent = res->pin ? &chg->pin : &chg->tile;

    sent->outcome = res->outcome;
    sent->status = res->response ? res->response->status : 0;
    sent->sent = 1;

    return NGX_OK;
}


static void
ngx_http_mpns_channels_tile_done(ngx_http_mpns_fanout_t *fo)
{
    ngx_http_mpns_change_t *chg = fo->data;

    ngx_int_t            rc;
    ngx_http_request_t  *r;

    r = fo->request;

    rc = fo->error ? NGX_HTTP_INTERNAL_SERVER_ERROR
                   : ngx_http_mpns_channels_stored(r, chg);

    ngx_http_finalize_request(r, rc);
}


static void
ngx_http_mpns_channels_cleanup(void *data)
{
    ngx_http_mpns_change_t *chg = data;

    ngx_http_mpns_fanout_cancel(&chg->fanout);
}


static ngx_int_t
ngx_http_mpns_channels_delete(ngx_http_request_t *r,
    ngx_http_mpns_loc_conf_t *mlcf, ngx_str_t *body,
    ngx_http_mpns_error_t *err)
{
    ngx_int_t                  rc;
    ngx_str_t                  value;
    ngx_uint_t                 by;
    ngx_http_mpns_change_t    *chg;
    ngx_http_mpns_registry_t  *reg;

    rc = ngx_http_mpns_channels_selector(r, body, &by, &value, err);

    if (rc != NGX_OK) {
        return (rc == NGX_DECLINED) ? rc : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    chg = ngx_pcalloc(r->pool, sizeof(ngx_http_mpns_change_t));
    if (chg == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    chg->by = by;
    chg->value = value;
    chg->deleting = 1;

    chg->op.handler = ngx_http_mpns_channels_changed;
    chg->op.data = r;
    chg->op.log = r->connection->log;

    reg = ngx_http_mpns_registry_get(mlcf->registry);

    r->main->count++;

    chg->op.rc = ngx_http_mpns_registry_delete(reg, by, &chg->value,
                                               &chg->deleted, &chg->op);

    if (chg->op.rc == NGX_AGAIN) {
        return NGX_DONE;
    }

    r->main->count--;

    return ngx_http_mpns_channels_deleted(r, chg);
}


/* the answer to a removal */

static ngx_int_t
ngx_http_mpns_channels_deleted(ngx_http_request_t *r,
    ngx_http_mpns_change_t *chg)
{
    u_char      *p, *buf;
    size_t       len;
    ngx_str_t   *field;
    ngx_uint_t   deleted;

    if (chg->op.rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    deleted = chg->deleted;

    field = &ngx_http_mpns_channels_selectors[chg->by];

    if (deleted) {
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "mpns registry deleted %ui by %V \"%V\"",
                       deleted, field, &chg->value);

        len = sizeof("{\"deleted\":}\n") - 1 + NGX_INT_T_LEN;

        buf = ngx_pnalloc(r->pool, len);
        if (buf == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        p = ngx_sprintf(buf, "{\"deleted\":%ui}\n", deleted);

        return ngx_http_mpns_send_json(r, NGX_HTTP_OK, buf, p - buf);
    }

    /* like ngx_http_mpns_send_error(), with the count */

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "mpns request refused: not registered, field \"%V\"",
                  field);

    len = sizeof("{\"error\":\"not registered\",\"field\":\"\","
                 "\"deleted\":0}\n") - 1 + field->len;

    buf = ngx_pnalloc(r->pool, len);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(buf, "{\"error\":\"not registered\",\"field\":\"%V\","
                         "\"deleted\":0}\n", field);

    return ngx_http_mpns_send_json(r, NGX_HTTP_NOT_FOUND, buf, p - buf);
}


static void
ngx_http_mpns_channels_changed(ngx_http_mpns_store_op_t *op)
{
    ngx_http_request_t *r = op->data;

    ngx_int_t                rc;
    ngx_connection_t        *c;
    ngx_http_mpns_change_t  *chg;

    chg = (ngx_http_mpns_change_t *) ((u_char *) op
                                      - offsetof(ngx_http_mpns_change_t, op));

    rc = chg->deleting ? ngx_http_mpns_channels_deleted(r, chg)
                       : ngx_http_mpns_channels_stored(r, chg);

    /* the request may be gone once finalized */
    c = r->connection;

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* exactly one of channel, device and user: in the query or the body */

static ngx_int_t
ngx_http_mpns_channels_selector(ngx_http_request_t *r, ngx_str_t *body,
    ngx_uint_t *by, ngx_str_t *value, ngx_http_mpns_error_t *err)
{
    ngx_int_t                  rc;
    ngx_str_t                  name, v, *field;
    ngx_uint_t                 i, k, n, found;
    ngx_http_mpns_json_t       json;
    ngx_http_mpns_json_tok_t  *t, *tok;

    found = 0;

    for (k = 0; k < 3; k++) {
        field = &ngx_http_mpns_channels_selectors[k];

        rc = ngx_http_mpns_channels_arg(r, field, &v);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_DECLINED) {
            continue;
        }

        if (found++) {
            return ngx_http_mpns_channels_mistake(err, NGX_HTTP_BAD_REQUEST,
                                                  "conflicting field", field);
        }

        *by = k;
        *value = v;
    }

    if (body->len) {

        if (!ngx_http_mpns_request_is_type(r->headers_in.content_type,
                                           "application/json",
                                           sizeof("application/json") - 1))
        {
            return ngx_http_mpns_channels_mistake(err,
                                        NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                        "unsupported content type",
                                        &ngx_http_mpns_channels_body_field);
        }

        rc = ngx_http_mpns_json_parse(r->pool, body, &json);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_DECLINED) {
            return ngx_http_mpns_channels_mistake(err, NGX_HTTP_BAD_REQUEST,
                                        json.error,
                                        &ngx_http_mpns_channels_body_field);
        }

        if (json.tokens[0].type != NGX_HTTP_MPNS_JSON_OBJECT) {
            return ngx_http_mpns_channels_mistake(err, NGX_HTTP_BAD_REQUEST,
                                        "invalid json",
                                        &ngx_http_mpns_channels_body_field);
        }

        t = json.tokens;
        i = 1;

        for (n = 0; n < t[0].size; n++) {

            if (ngx_http_mpns_json_string(r->pool, &t[i], &name) != NGX_OK) {
                return ngx_http_mpns_channels_mistake(err,
                                        NGX_HTTP_BAD_REQUEST, "invalid json",
                                        &ngx_http_mpns_channels_body_field);
            }

            tok = &t[i + 1];
            i = tok->next;

            for (k = 0; k < 3; k++) {
                field = &ngx_http_mpns_channels_selectors[k];

                if (field->len == name.len
                    && ngx_strncmp(field->data, name.data, name.len) == 0)
                {
                    break;
                }
            }

            if (k == 3) {
                return ngx_http_mpns_channels_mistake(err,
                                                      NGX_HTTP_BAD_REQUEST,
                                                      "unknown field", &name);
            }

            field = &ngx_http_mpns_channels_selectors[k];

            if (tok->type != NGX_HTTP_MPNS_JSON_STRING) {
                return ngx_http_mpns_channels_mistake(err,
                                                      NGX_HTTP_BAD_REQUEST,
                                                      "invalid value", field);
            }

            rc = ngx_http_mpns_json_string(r->pool, tok, &v);

            if (rc == NGX_ERROR) {
                return NGX_ERROR;
            }

            if (rc != NGX_OK) {
                return ngx_http_mpns_channels_mistake(err,
                                                      NGX_HTTP_BAD_REQUEST,
                                                      "invalid character",
                                                      field);
            }

            if (found++) {
                return ngx_http_mpns_channels_mistake(err,
                                                      NGX_HTTP_BAD_REQUEST,
                                                      "conflicting field",
                                                      field);
            }

            *by = k;
            *value = v;
        }
    }

    if (!found) {
        return ngx_http_mpns_channels_mistake(err, NGX_HTTP_BAD_REQUEST,
                                        "missing field",
                                        &ngx_http_mpns_channels_selectors[0]);
    }

    if (value->len == 0) {
        return ngx_http_mpns_channels_mistake(err, NGX_HTTP_BAD_REQUEST,
                                        "invalid value",
                                        &ngx_http_mpns_channels_selectors[*by]);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_channels_list(ngx_http_request_t *r,
    ngx_http_mpns_loc_conf_t *mlcf, ngx_http_mpns_error_t *err)
{
    u_char                    *p;
    size_t                     len;
    ngx_int_t                  rc, limit;
    ngx_str_t                  value, name, next;
    ngx_uint_t                 total;
    ngx_http_mpns_list_t       list;
    ngx_http_mpns_cursor_t     cursor;
    ngx_http_mpns_filter_t     filter;
    ngx_http_mpns_registry_t  *reg;

    ngx_memzero(&filter, sizeof(ngx_http_mpns_filter_t));

    ngx_str_set(&name, "user");
    if (ngx_http_mpns_channels_arg(r, &name, &filter.user) == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&name, "tag");
    if (ngx_http_mpns_channels_arg(r, &name, &filter.tag) == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&name, "os");
    if (ngx_http_mpns_channels_arg(r, &name, &filter.os) == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    limit = NGX_HTTP_MPNS_LIMIT;

    rc = ngx_http_mpns_channels_arg(r, &ngx_http_mpns_channels_limit, &value);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_OK) {
        limit = ngx_atoi(value.data, value.len);

        if (limit < 1 || limit > NGX_HTTP_MPNS_MAX_LIMIT) {
            return ngx_http_mpns_channels_mistake(err, NGX_HTTP_BAD_REQUEST,
                                            "invalid value",
                                            &ngx_http_mpns_channels_limit);
        }
    }

    ngx_memzero(&cursor, sizeof(ngx_http_mpns_cursor_t));

    rc = ngx_http_mpns_channels_arg(r, &ngx_http_mpns_channels_after, &value);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_OK && value.len) {
        if (value.len > NGX_HTTP_MPNS_MAX_CHANNEL) {
            return ngx_http_mpns_channels_mistake(err, NGX_HTTP_BAD_REQUEST,
                                            "value too long",
                                            &ngx_http_mpns_channels_after);
        }

        cursor.hash = ngx_crc32_short(value.data, value.len);
        cursor.len = value.len;
        ngx_memcpy(cursor.channel, value.data, value.len);
        cursor.started = 1;
    }

    reg = ngx_http_mpns_registry_get(mlcf->registry);

    total = ngx_http_mpns_registry_count(reg);

    ngx_memzero(&list, sizeof(ngx_http_mpns_list_t));

    list.pool = r->pool;
    list.last = &list.out;
    list.log = r->connection->log;

    len = sizeof("{\"total\":,\"channels\":[") - 1 + NGX_INT_T_LEN;

    p = ngx_http_mpns_channels_room(&list, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(p, "{\"total\":%ui,\"channels\":[", total);
    list.len += p - list.buf->last;
    list.buf->last = p;

    while (!cursor.done && list.taken < (ngx_uint_t) limit) {
        if (ngx_http_mpns_registry_next(reg, &filter, &cursor,
                                        limit - list.taken,
                                        ngx_http_mpns_channels_take, &list)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    /* the last entry taken: the next page starts after it */

    next.data = cursor.channel;
    next.len = cursor.len;

    len = sizeof("],\"next\":}\n") - 1
          + (cursor.done ? sizeof("null") - 1
                         : ngx_http_mpns_json_str_len(&next));

    p = ngx_http_mpns_channels_room(&list, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(p, "],\"next\":", sizeof("],\"next\":") - 1);
    p = cursor.done ? ngx_cpymem(p, "null", sizeof("null") - 1)
                    : ngx_http_mpns_json_str(p, &next);
    *p++ = '}';
    *p++ = LF;

    list.len += p - list.buf->last;
    list.buf->last = p;
    list.buf->last_buf = (r == r->main) ? 1 : 0;
    list.buf->last_in_chain = 1;

    return ngx_http_mpns_channels_send(r, NGX_HTTP_OK, list.out, list.len);
}


/* called with the zone locked */

static ngx_int_t
ngx_http_mpns_channels_take(ngx_http_mpns_entry_t *entry, void *data)
{
    ngx_http_mpns_list_t *list = data;

    u_char  *p, *start;
    size_t   len;

    len = ngx_http_mpns_registry_json_len(entry) + sizeof(",") - 1;

    start = ngx_http_mpns_channels_room(list, len);
    if (start == NULL) {
        return NGX_ERROR;
    }

    p = start;

    if (list->taken) {
        *p++ = ',';
    }

    p = ngx_http_mpns_registry_json(p, entry);

    if ((size_t) (p - start) > len) {
        ngx_log_error(NGX_LOG_ALERT, list->log, 0,
                      "mpns registry listing: buffer overflow");
        return NGX_ERROR;
    }

    list->buf->last = p;
    list->len += p - start;
    list->taken++;

    return NGX_OK;
}


/* at least "len" bytes at list->buf->last, in a new buffer if need be */

static u_char *
ngx_http_mpns_channels_room(ngx_http_mpns_list_t *list, size_t len)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    b = list->buf;

    if (b && (size_t) (b->end - b->last) >= len) {
        return b->last;
    }

    b = ngx_create_temp_buf(list->pool, ngx_max(len, NGX_HTTP_MPNS_LIST_BUF));
    if (b == NULL) {
        return NULL;
    }

    cl = ngx_alloc_chain_link(list->pool);
    if (cl == NULL) {
        return NULL;
    }

    cl->buf = b;
    cl->next = NULL;

    *list->last = cl;
    list->last = &cl->next;
    list->buf = b;

    return b->last;
}


/* a query argument, "+" and %XX decoded; NGX_DECLINED: not given */

static ngx_int_t
ngx_http_mpns_channels_arg(ngx_http_request_t *r, ngx_str_t *name,
    ngx_str_t *value)
{
    if (ngx_http_arg(r, name->data, name->len, value) != NGX_OK) {
        ngx_str_null(value);
        return NGX_DECLINED;
    }

    return ngx_http_mpns_request_unescape(r->pool, value);
}


static ngx_int_t
ngx_http_mpns_channels_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_chain_t *out, size_t len)
{
    ngx_int_t  rc;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, out);
}


static ngx_int_t
ngx_http_mpns_channels_mistake(ngx_http_mpns_error_t *err, ngx_uint_t status,
    const char *text, ngx_str_t *field)
{
    err->status = status;
    err->text = text;
    err->field = *field;

    return NGX_DECLINED;
}
